"""Build a tiny AudioLDM2 pipeline with random weights from the real
diffusers and transformers classes, for tests that prove the whole path
(export, quantization, the Rust engine) without the real 1.1 GB weights.

The shapes follow cvssp/audioldm2 where they matter to the code paths:
8 latent channels and a 3-block VAE, the real HiFi-GAN upsample rates
[5, 4, 2, 2, 2], a 4-level UNet with both cross-attentions (GPT-2 and
T5), a gated-gelu T5 encoder, the real DDIM scheduler config; the widths
are small. The tokenizers are trained here, on a few captions, so nothing
is downloaded.

Usage: python quantize/tiny.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

# The real cvssp/audioldm2 scheduler config (DDIM).
DDIM_CONFIG = dict(
    beta_start=0.0015,
    beta_end=0.0195,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    timestep_spacing="leading",
    num_train_timesteps=1000,
    prediction_type="epsilon",
)

CORPUS = [
    "Rain falls on a tin roof while thunder rumbles in the distance",
    "Waves lapping against boats, seagulls calling and ropes creaking in a harbour at dusk",
    "A hammer striking an anvil and a fire crackling in a village forge",
    "Insects chirping and rain dripping from leaves in a rainforest at night",
    "Crowd footsteps on cobblestones, cart wheels rolling and geese honking in a busy market square",
    "A steam locomotive chugging and whistling as it passes a station",
    "Wind howling around a chimney while snow falls on a quiet village",
    "Church bells ringing and footsteps echoing in a stone cathedral",
    "Birds singing in a garden with bees buzzing among the flowers",
    "A clock ticking and a cat purring beside a crackling fireplace",
]


def train_roberta_tokenizer():
    """A byte-level BPE tokenizer with RoBERTa's special tokens."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS * 20,
        vocab_size=300,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    from tokenizers.processors import RobertaProcessing

    bpe._tokenizer.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=77,
    )
    # Loading vocab.json/merges.txt by path silently gave a 5-token
    # vocabulary with transformers 5: check the real one came through.
    assert len(tokenizer) >= 256, len(tokenizer)
    return tokenizer


def train_t5_tokenizer():
    """A SentencePiece-style unigram tokenizer with T5's special tokens."""
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import T5TokenizerFast

    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(
        CORPUS * 20,
        vocab_size=200,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
    )
    # T5 appends </s> to every sequence.
    from tokenizers.processors import TemplateProcessing

    unigram._tokenizer.post_processor = TemplateProcessing(
        single="$A </s>",
        pair="$A </s> $B </s>",
        special_tokens=[("</s>", unigram.token_to_id("</s>"))],
    )
    tokenizer = T5TokenizerFast(
        tokenizer_object=unigram._tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_ids=0,
        model_max_length=128,
    )
    assert len(tokenizer) >= 100, len(tokenizer)
    return tokenizer


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

    tokenizer = train_roberta_tokenizer()
    tokenizer_2 = train_t5_tokenizer()

    clap_dim, t5_dim, gpt_dim = 16, 32, 24

    torch.manual_seed(0)
    text_config = ClapTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=clap_dim,
        intermediate_size=37,
        num_attention_heads=2,
        num_hidden_layers=2,
        max_position_embeddings=80,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        projection_dim=clap_dim,
    )
    audio_config = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        intermediate_size=37,
        depths=[2, 2],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
        hidden_size=192,
        patch_size=2,
        patch_stride=2,
        patch_embed_input_channels=4,
        projection_dim=clap_dim,
    )
    text_encoder = ClapModel(
        ClapConfig(
            text_config=text_config.to_dict(),
            audio_config=audio_config.to_dict(),
            projection_dim=clap_dim,
        )
    )
    feature_extractor = ClapFeatureExtractor(feature_size=64, hop_length=7900)

    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=t5_dim,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=2,
            feed_forward_proj="gated-gelu",
            relative_attention_num_buckets=8,
            pad_token_id=0,
            eos_token_id=1,
        )
    )

    torch.manual_seed(0)
    projection_model = AudioLDM2ProjectionModel(
        text_encoder_dim=clap_dim,
        text_encoder_1_dim=t5_dim,
        langauge_model_dim=gpt_dim,
    )

    torch.manual_seed(0)
    language_model = GPT2LMHeadModel(
        GPT2Config(
            n_embd=gpt_dim,
            n_head=2,
            n_layer=2,
            n_positions=256,
            vocab_size=99,
            bos_token_id=98,
            eos_token_id=98,
        )
    )
    language_model.config.max_new_tokens = 8

    torch.manual_seed(0)
    unet = AudioLDM2UNet2DConditionModel(
        sample_size=16,
        in_channels=8,
        out_channels=8,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=(
            "DownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
        ),
        up_block_types=(
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "UpBlock2D",
        ),
        # As cvssp/audioldm2: a self-attention, then GPT-2 (idx 1) and T5
        # (idx 2) cross-attentions in every block.
        cross_attention_dim=([None, gpt_dim, t5_dim],) * 4,
        attention_head_dim=8,
        use_linear_projection=True,
    )

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=1,
        out_channels=1,
        latent_channels=8,
        block_out_channels=[16, 32, 32],
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        norm_num_groups=8,
        layers_per_block=1,
    )

    torch.manual_seed(0)
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=64,
            sampling_rate=16000,
            upsample_initial_channel=32,
            upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3,
            normalize_before=False,
        )
    )
    # transformers initialises the HiFi-GAN's convolutions with std 0.01, so
    # after five upsampling stages the waveform is ~1e-8: silence, useless
    # for parity checks. Variance-preserving weights give a real signal.
    with torch.no_grad():
        for module in vocoder.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                fan_in = module.weight.shape[1] * module.weight.shape[2]
                if isinstance(module, torch.nn.ConvTranspose1d):
                    fan_in = module.weight.shape[0] * module.weight.shape[2] // max(
                        module.stride[0], 1
                    )
                module.weight.normal_(0.0, (1.0 / fan_in) ** 0.5)

    return AudioLDM2Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        projection_model=projection_model,
        language_model=language_model,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        feature_extractor=feature_extractor,
        unet=unet,
        scheduler=DDIMScheduler(**DDIM_CONFIG),
        vocoder=vocoder,
    )


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-audioldm2")
    pipe = build()
    pipe.save_pretrained(out)
    generator = torch.Generator().manual_seed(0)
    audio = pipe(
        CORPUS[0],
        negative_prompt="low quality",
        num_inference_steps=4,
        audio_length_in_s=1.28,
        guidance_scale=3.5,
        generator=generator,
    ).audios[0]
    ids = pipe.tokenizer(CORPUS[0]).input_ids
    ids_2 = pipe.tokenizer_2(CORPUS[0]).input_ids
    print(f"tokenizers: {len(pipe.tokenizer)} and {len(pipe.tokenizer_2)} tokens; "
          f"caption -> {len(ids)} and {len(ids_2)} ids")
    print(f"saved to {out}; test run: {audio.shape[0]} samples, peak {abs(audio).max():.4f}")


if __name__ == "__main__":
    main()
