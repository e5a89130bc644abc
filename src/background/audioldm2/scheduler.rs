//! Diffusion schedulers behind one small trait, as diffusers computes them
//! for AudioLDM2: DDIM (eta 0, the pipeline's default) and DPM-Solver++
//! multistep (order 2, for 20–25 steps). The loop that calls them lives
//! with the pipeline; these only turn (step, predicted noise, sample) into
//! the next sample. Arithmetic is in f64 and rounded to f32 per step.

use serde::Deserialize;
use thiserror::Error;

/// The scheduler config a bundle carries (`scheduler.json`, diffusers'
/// field names). Unknown fields are ignored: diffusers adds new ones.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    pub(crate) num_train_timesteps: usize,
    pub(crate) beta_start: f64,
    pub(crate) beta_end: f64,
    pub(crate) beta_schedule: String,
    #[serde(default)]
    pub(crate) steps_offset: usize,
    #[serde(default = "default_spacing")]
    pub(crate) timestep_spacing: String,
    #[serde(default = "default_prediction")]
    pub(crate) prediction_type: String,
    #[serde(default)]
    pub(crate) set_alpha_to_one: bool,
}

fn default_spacing() -> String {
    "leading".to_owned()
}

fn default_prediction() -> String {
    "epsilon".to_owned()
}

#[derive(Debug, Error, PartialEq)]
pub enum SchedulerError {
    #[error("scheduler config: {0} is not supported (vivid supports {1})")]
    Unsupported(String, &'static str),
    #[error("{steps} steps is outside 1 to {max}")]
    Steps { steps: usize, max: usize },
}

impl SchedulerConfig {
    fn check(&self, steps: usize) -> Result<(), SchedulerError> {
        if self.beta_schedule != "scaled_linear" {
            return Err(SchedulerError::Unsupported(
                format!("beta_schedule \"{}\"", self.beta_schedule),
                "\"scaled_linear\"",
            ));
        }
        if self.timestep_spacing != "leading" {
            return Err(SchedulerError::Unsupported(
                format!("timestep_spacing \"{}\"", self.timestep_spacing),
                "\"leading\"",
            ));
        }
        if self.prediction_type != "epsilon" {
            return Err(SchedulerError::Unsupported(
                format!("prediction_type \"{}\"", self.prediction_type),
                "\"epsilon\"",
            ));
        }
        if steps == 0 || steps >= self.num_train_timesteps {
            return Err(SchedulerError::Steps {
                steps,
                max: self.num_train_timesteps - 1,
            });
        }
        Ok(())
    }

    /// ᾱ_t for every training timestep (scaled-linear betas).
    fn alphas_cumprod(&self) -> Vec<f64> {
        let n = self.num_train_timesteps;
        let (a, b) = (self.beta_start.sqrt(), self.beta_end.sqrt());
        let mut product = 1.0;
        (0..n)
            .map(|i| {
                let root = a + (b - a) * i as f64 / (n - 1) as f64;
                product *= 1.0 - root * root;
                product
            })
            .collect()
    }
}

/// One denoising schedule: the timesteps to evaluate the model at, and the
/// update from one sample to the next.
pub trait Scheduler {
    /// Timesteps, first to last (descending).
    fn timesteps(&self) -> &[usize];
    /// The sample after step `index`, given the model's noise prediction
    /// (after classifier-free guidance) at that step.
    fn step(&mut self, index: usize, eps: &[f32], sample: &[f32]) -> Vec<f32>;
}

/// DDIM with eta 0, as diffusers' `DDIMScheduler`.
#[derive(Debug, Clone)]
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    timesteps: Vec<usize>,
    step_ratio: usize,
}

impl Ddim {
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self, SchedulerError> {
        config.check(steps)?;
        let alphas_cumprod = config.alphas_cumprod();
        let step_ratio = config.num_train_timesteps / steps;
        let timesteps = (0..steps)
            .rev()
            .map(|i| i * step_ratio + config.steps_offset)
            .collect();
        Ok(Self {
            final_alpha_cumprod: if config.set_alpha_to_one {
                1.0
            } else {
                alphas_cumprod[0]
            },
            alphas_cumprod,
            timesteps,
            step_ratio,
        })
    }
}

impl Scheduler for Ddim {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&mut self, index: usize, eps: &[f32], sample: &[f32]) -> Vec<f32> {
        let t = self.timesteps[index];
        let a_t = self.alphas_cumprod[t];
        let a_prev = t
            .checked_sub(self.step_ratio)
            .map_or(self.final_alpha_cumprod, |prev| self.alphas_cumprod[prev]);
        let (sqrt_1m_t, sqrt_t) = ((1.0 - a_t).sqrt(), a_t.sqrt());
        let (sqrt_1m_prev, sqrt_prev) = ((1.0 - a_prev).sqrt(), a_prev.sqrt());
        sample
            .iter()
            .zip(eps)
            .map(|(&x, &e)| {
                let (x, e) = (f64::from(x), f64::from(e));
                let x0 = (x - sqrt_1m_t * e) / sqrt_t;
                (sqrt_prev * x0 + sqrt_1m_prev * e) as f32
            })
            .collect()
    }
}

/// DPM-Solver++ multistep as diffusers' `DPMSolverMultistepScheduler` with
/// `algorithm_type="dpmsolver++"` and its defaults: order 2, midpoint
/// solver, final sigma 0 with a first-order last step.
#[derive(Debug, Clone)]
pub struct DpmSolverPlusPlus {
    timesteps: Vec<usize>,
    /// σ at each timestep, then the final 0.
    sigmas: Vec<f64>,
    previous_x0: Option<Vec<f64>>,
}

impl DpmSolverPlusPlus {
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Self, SchedulerError> {
        config.check(steps)?;
        let alphas_cumprod = config.alphas_cumprod();
        let step_ratio = config.num_train_timesteps / (steps + 1);
        let timesteps: Vec<usize> = (1..=steps)
            .rev()
            .map(|i| i * step_ratio + config.steps_offset)
            .collect();
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| ((1.0 - alphas_cumprod[t]) / alphas_cumprod[t]).sqrt())
            .collect();
        sigmas.push(0.0);
        Ok(Self {
            timesteps,
            sigmas,
            previous_x0: None,
        })
    }

    /// (α, σ) of the VP parameterisation for a σ of the VE one.
    fn alpha_sigma(sigma: f64) -> (f64, f64) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }

    fn lambda(alpha: f64, sigma: f64) -> f64 {
        alpha.ln() - sigma.ln()
    }
}

impl Scheduler for DpmSolverPlusPlus {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&mut self, index: usize, eps: &[f32], sample: &[f32]) -> Vec<f32> {
        let steps = self.timesteps.len();
        let (a_s, s_s) = Self::alpha_sigma(self.sigmas[index]);
        let (a_t, s_t) = Self::alpha_sigma(self.sigmas[index + 1]);
        let x0: Vec<f64> = sample
            .iter()
            .zip(eps)
            .map(|(&x, &e)| (f64::from(x) - s_s * f64::from(e)) / a_s)
            .collect();
        let lambda_s = Self::lambda(a_s, s_s);
        // σ_t = 0 at the end: λ_t = ∞, exp(-h) = 0.
        let exp_neg_h = if s_t > 0.0 {
            (-(Self::lambda(a_t, s_t) - lambda_s)).exp()
        } else {
            0.0
        };
        let ratio = if s_s > 0.0 { s_t / s_s } else { 0.0 };
        // The last step is first order at every step count: diffusers'
        // `final_sigmas_type = "zero"` makes it so (`lower_order_final`
        // below 15 steps is then implied), and the second-order update
        // there would divide by h = λ_t − λ_s = ∞ and turn the latents
        // into infinities.
        let first_order = self.previous_x0.is_none() || index + 1 == steps;
        let next: Vec<f32> = match (&self.previous_x0, first_order) {
            (Some(previous), false) => {
                let (a_p, s_p) = Self::alpha_sigma(self.sigmas[index - 1]);
                let h = Self::lambda(a_t, s_t) - lambda_s;
                let r0 = (lambda_s - Self::lambda(a_p, s_p)) / h;
                sample
                    .iter()
                    .zip(x0.iter().zip(previous))
                    .map(|(&x, (&d0, &p))| {
                        let d1 = (d0 - p) / r0;
                        (ratio * f64::from(x)
                            - a_t * (exp_neg_h - 1.0) * d0
                            - 0.5 * a_t * (exp_neg_h - 1.0) * d1) as f32
                    })
                    .collect()
            }
            _ => sample
                .iter()
                .zip(&x0)
                .map(|(&x, &d0)| (ratio * f64::from(x) - a_t * (exp_neg_h - 1.0) * d0) as f32)
                .collect(),
        };
        self.previous_x0 = Some(x0);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audioldm2_config() -> SchedulerConfig {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.0015,
            beta_end: 0.0195,
            beta_schedule: "scaled_linear".into(),
            steps_offset: 1,
            timestep_spacing: "leading".into(),
            prediction_type: "epsilon".into(),
            set_alpha_to_one: false,
        }
    }

    #[test]
    fn timesteps_are_diffusers_leading_spacing() {
        let config = audioldm2_config();
        assert_eq!(
            Ddim::new(&config, 5).unwrap().timesteps(),
            &[801, 601, 401, 201, 1]
        );
        assert_eq!(
            DpmSolverPlusPlus::new(&config, 5).unwrap().timesteps(),
            &[831, 665, 499, 333, 167]
        );
    }

    #[test]
    fn unsupported_configs_and_step_counts_are_refused() {
        let mut config = audioldm2_config();
        assert!(Ddim::new(&config, 0).is_err());
        assert!(Ddim::new(&config, 1000).is_err());
        config.prediction_type = "v_prediction".into();
        let err = Ddim::new(&config, 10).unwrap_err().to_string();
        assert!(err.contains("v_prediction"), "{err}");
    }

    #[test]
    fn ddim_with_exact_noise_recovers_the_clean_sample() {
        // x_t = sqrt(ā)·x0 + sqrt(1-ā)·ε; with the true ε every step lands
        // on the same x0 scaled to the next timestep, and the last on x0
        // scaled by ā_0's root.
        let config = audioldm2_config();
        let mut ddim = Ddim::new(&config, 10).unwrap();
        let ac = config.alphas_cumprod();
        let x0 = [0.5f32, -0.25, 1.0];
        let eps = [0.3f32, 0.1, -0.7];
        let t0 = ddim.timesteps()[0];
        let mut x: Vec<f32> = x0
            .iter()
            .zip(&eps)
            .map(|(a, e)| {
                (ac[t0].sqrt() * f64::from(*a) + (1.0 - ac[t0]).sqrt() * f64::from(*e)) as f32
            })
            .collect();
        for i in 0..ddim.timesteps().len() {
            x = ddim.step(i, &eps, &x);
        }
        let final_ac = ac[0];
        for ((out, a), e) in x.iter().zip(&x0).zip(&eps) {
            let expected =
                final_ac.sqrt() * f64::from(*a) + (1.0 - final_ac).sqrt() * f64::from(*e);
            assert!(
                (f64::from(*out) - expected).abs() < 1e-5,
                "{out} vs {expected}"
            );
        }
    }

    #[test]
    fn dpm_solver_with_exact_noise_recovers_the_clean_sample_at_any_step_count() {
        // x_t = α_t·x0 + σ_t·ε; with the true ε every data prediction is
        // x0, so each step lands on x0 noised to the next σ, and the last
        // (σ = 0) on x0 itself. 20 and more steps once ended in infinities:
        // the last step took the second-order update, which divides by
        // λ_t − λ_s = ∞ at σ_t = 0.
        let config = audioldm2_config();
        let x0 = [0.5f32, -0.25, 1.0];
        let eps = [0.3f32, 0.1, -0.7];
        for steps in [5, 14, 15, 20, 25, 50] {
            let mut dpm = DpmSolverPlusPlus::new(&config, steps).unwrap();
            let (alpha, sigma) = DpmSolverPlusPlus::alpha_sigma(dpm.sigmas[0]);
            let mut x: Vec<f32> = x0
                .iter()
                .zip(&eps)
                .map(|(a, e)| (alpha * f64::from(*a) + sigma * f64::from(*e)) as f32)
                .collect();
            for i in 0..steps {
                x = dpm.step(i, &eps, &x);
            }
            for (out, expected) in x.iter().zip(&x0) {
                assert!(
                    (out - expected).abs() < 1e-4,
                    "{steps} steps: {out} vs {expected}"
                );
            }
        }
    }
}
