//! What one job asks for: a `.txt` file (the text, the config's settings)
//! or a `.toml` job file with the text inline or in a file beside it and
//! per-job settings. Nothing a job file says can reach outside the inbox
//! (its text) or the done folder (its output name).

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

use crate::describe::Method;

#[derive(Debug, Error, PartialEq)]
pub(crate) enum JobError {
    #[error("{0}")]
    Invalid(String),
}

/// A `.toml` job file as written. Unknown keys are errors.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobFile {
    /// The text to narrate.
    pub text: Option<String>,
    /// Or the name of a text file beside the job file in the inbox.
    pub file: Option<String>,
    /// A voice in the models folder's `voices/`, by file name.
    pub voice: Option<String>,
    /// Speaking rate (0.25 to 4).
    pub rate: Option<f32>,
    /// Description method: llm, text or fixed.
    pub method: Option<Method>,
    /// The caption for method fixed (setting it implies fixed).
    pub caption: Option<String>,
    /// Seed of the description and the background.
    pub seed: Option<u32>,
    /// The soundscape's sources to play, by catalog id or phrase (`vivid
    /// sounds`), instead of the describer's choice.
    pub sounds: Option<Vec<String>>,
    /// The soundscape's place, by catalog id or phrase.
    pub place: Option<String>,
    /// Play the narration when done.
    pub play: Option<bool>,
    /// Name of the outputs in the done folder (without extension).
    pub output: Option<String>,
}

/// Per-job settings over the config's: what the render takes, and what
/// the service does with the result.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Overrides {
    /// Voice, rate, method, caption, seed, sounds and place.
    pub render: crate::config::Overrides,
    pub play: Option<bool>,
    pub output: Option<String>,
}

/// A plain file name: no folders, not hidden, not `..`, no control bytes.
pub(crate) fn plain_name(name: &str, what: &str) -> Result<(), JobError> {
    let bad = |why: &str| Err(JobError::Invalid(format!("{what} \"{name}\" {why}")));
    if name.is_empty() || name.len() > 200 {
        return bad("must be 1 to 200 bytes long");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("must be a plain name, without folders");
    }
    if name.starts_with('.') {
        return bad("must not start with a dot");
    }
    if name.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    Ok(())
}

impl JobFile {
    /// Parses a job file's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<JobFile, JobError> {
        let job: JobFile = toml::from_str(text).map_err(|e| {
            JobError::Invalid(format!(
                "{} is not a valid job file: {}",
                path.display(),
                e.message()
            ))
        })?;
        match (&job.text, &job.file) {
            (Some(_), Some(_)) => {
                return Err(JobError::Invalid(
                    "a job file gives either `text` or `file`, not both".into(),
                ));
            }
            (None, None) => {
                return Err(JobError::Invalid(
                    "a job file needs `text = \"...\"` or `file = \"NAME.txt\"` (a text file beside it)".into(),
                ));
            }
            _ => {}
        }
        if let Some(file) = &job.file {
            plain_name(file, "file")?;
        }
        if let Some(voice) = &job.voice {
            plain_name(voice, "voice")?;
        }
        if let Some(output) = &job.output {
            plain_name(output, "output")?;
        }
        if let Some(rate) = job.rate
            && !(0.25..=4.0).contains(&rate)
        {
            return Err(JobError::Invalid(format!(
                "rate {rate} is outside the allowed 0.25 to 4"
            )));
        }
        if let Some(sounds) = &job.sounds
            && (sounds.len() > 8 || sounds.iter().any(|s| s.trim().is_empty() || s.len() > 100))
        {
            return Err(JobError::Invalid(
                "`sounds` lists at most 8 catalog ids or phrases (see `vivid sounds`), none empty"
                    .into(),
            ));
        }
        if job.method == Some(Method::Fixed) && job.caption.is_none() {
            return Err(JobError::Invalid("method \"fixed\" needs `caption`".into()));
        }
        Ok(job)
    }

    pub fn overrides(&self) -> Overrides {
        Overrides {
            render: crate::config::Overrides {
                voice_name: self.voice.clone(),
                rate: self.rate,
                method: self.method.or(self.caption.as_ref().map(|_| Method::Fixed)),
                caption: self.caption.clone(),
                // One seed for the description and the background.
                describe_seed: self.seed,
                background_seed: self.seed.map(u64::from),
                sounds: self.sounds.clone(),
                place: self.place.clone(),
                ..crate::config::Overrides::default()
            },
            play: self.play,
            output: self.output.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JobFile, JobError> {
        JobFile::parse(Path::new("inbox/job.toml"), text)
    }

    #[test]
    fn a_job_file_with_inline_text_and_overrides() {
        let job = parse(
            "text = \"The tide is out.\"\nrate = 1.2\ncaption = \"Waves on a beach\"\nseed = 3\nplay = false\noutput = \"beach\"\n",
        )
        .unwrap();
        let o = job.overrides();
        assert_eq!(
            o.render.method,
            Some(Method::Fixed),
            "a caption implies fixed"
        );
        assert_eq!(o.render.rate, Some(1.2));
        assert_eq!(o.output.as_deref(), Some("beach"));
    }

    #[test]
    fn nothing_in_a_job_file_escapes_its_folders() {
        for bad in [
            "file = \"../etc/passwd\"",
            "file = \"/etc/passwd\"",
            "text = \"x\"\noutput = \"../../x\"",
            "text = \"x\"\noutput = \"/tmp/x\"",
            "text = \"x\"\noutput = \"..\"",
            "text = \"x\"\nvoice = \"../../voice.onnx\"",
            "text = \"x\"\noutput = \"a\\u0007b\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = parse("text = \"x\"\nspeed = 2\n").unwrap_err();
        assert!(err.to_string().contains("speed"), "{err}");
        let err = parse("text = \"x\"\nrate = 9\n").unwrap_err();
        assert!(err.to_string().contains("rate"), "{err}");
        assert!(
            parse("rate = 1.0\n")
                .unwrap_err()
                .to_string()
                .contains("text")
        );
        assert!(parse("text = \"a\"\nfile = \"b.txt\"\n").is_err());
        assert!(parse("text = \"a\"\nmethod = \"fixed\"\n").is_err());
        let o = parse("text = \"a\"\nsounds = [\"owl\", \"crickets\"]\nplace = \"forest\"\n")
            .unwrap()
            .overrides();
        assert_eq!(
            o.render.sounds.as_deref(),
            Some(&["owl".to_owned(), "crickets".to_owned()][..])
        );
        assert_eq!(o.render.place.as_deref(), Some("forest"));
        assert!(parse("text = \"a\"\nsounds = [\"\"]\n").is_err());
    }
}
