"""The tiny pipeline's recipe at the real cvssp/audioldm2 sizes, with random
weights: for benchmarks of the real-size graphs (speed, memory, int8
accuracy) on machines that cannot download the real weights. Never
committed; nothing here sounds like anything.

Usage: python quantize/realsize.py OUT_DIR

Sizes as cvssp/audioldm2: UNet block_out [128, 256, 384, 640] with a
self-attention, GPT-2 (768) and T5 (1024) cross-attention per block;
FLAN-T5-large encoder; GPT-2 base; CLAP HTSAT-unfused (RoBERTa-base text
branch, 512-d projection); the VAE with 8 latent channels; the HiFi-GAN
vocoder at 16 kHz. The tokenizers are the tiny ones (random weights make
the real vocabularies pointless), the embedding tables have the real sizes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny  # noqa: E402


def build():
    from diffusers import (
        AudioLDM2Pipeline,
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
        AutoencoderKL,
        DDIMScheduler,
    )
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
        T5Config,
        T5EncoderModel,
    )

    torch.manual_seed(0)
    text_encoder = ClapModel(
        ClapConfig(
            text_config=ClapTextConfig(vocab_size=50265, max_position_embeddings=514,
                                       projection_dim=512).to_dict(),
            audio_config=ClapAudioConfig(projection_dim=512).to_dict(),
            projection_dim=512,
        )
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=32128, d_model=1024, d_kv=64, d_ff=2816, num_layers=24,
                 num_heads=16, feed_forward_proj="gated-gelu")
    )
    projection_model = AudioLDM2ProjectionModel(
        text_encoder_dim=512, text_encoder_1_dim=1024, langauge_model_dim=768
    )
    language_model = GPT2LMHeadModel(GPT2Config())
    language_model.config.max_new_tokens = 8
    unet = AudioLDM2UNet2DConditionModel(
        in_channels=8,
        out_channels=8,
        block_out_channels=(128, 256, 384, 640),
        layers_per_block=2,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3 + ("UpBlock2D",),
        cross_attention_dim=([None, 768, 1024],) * 4,
        attention_head_dim=8,
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        block_out_channels=[128, 256, 512],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        layers_per_block=2,
        scaling_factor=0.4586,
    )
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=64,
            sampling_rate=16000,
            upsample_initial_channel=1024,
            upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3,
            normalize_before=False,
        )
    )
    tokenizer = tiny.train_roberta_tokenizer()
    tokenizer_2 = tiny.train_t5_tokenizer()
    return AudioLDM2Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        projection_model=projection_model,
        language_model=language_model,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        feature_extractor=ClapFeatureExtractor(),
        unet=unet,
        scheduler=DDIMScheduler(**tiny.DDIM_CONFIG),
        vocoder=vocoder,
    )


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "realsize-audioldm2")
    started = time.time()
    pipe = build()
    for name in ("unet", "text_encoder", "text_encoder_2", "language_model", "vae", "vocoder",
                 "projection_model"):
        params = sum(p.numel() for p in getattr(pipe, name).parameters())
        print(f"{name}: {params / 1e6:.1f} M parameters")
    pipe.save_pretrained(out)
    print(f"saved to {out} in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
