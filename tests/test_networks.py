"""Shapes of every encoder/decoder pair, and incremental decoding agreeing with the full forward pass."""
import pytest
import torch

from model.captioner import CaptionModel, ModelConfig
from model.decoders import DecoderConfig
from model.encoders import ENCODERS, UnknownEncoderError, build_encoder, get_spec, preprocess
from model.train import collate
from tiny import feats, tiny_config, tiny_decoder


@pytest.mark.parametrize("encoder", list(ENCODERS))
@pytest.mark.parametrize("decoder", ["transformer", "lstm"])
def test_forward_shapes_for_every_pair(encoder, decoder):
    spec = get_spec(encoder)
    cfg = ModelConfig(encoder, DecoderConfig(kind=decoder, vocab_size=30, feature_dim=spec.feature_dim,
                                             grid_size=spec.grid ** 2, d_model=32, n_layers=1, n_heads=2,
                                             hidden=32, max_len=10))
    model = CaptionModel(cfg, pretrained_encoder=False).eval()
    images = torch.randn(2, 3, spec.image_size, spec.image_size)
    with torch.no_grad():
        grid = model.encoder(images)
        logits = model(images, torch.randint(0, 30, (2, 7)))
    assert grid.shape == (2, spec.grid ** 2, spec.feature_dim)
    assert logits.shape == (2, 7, 30)


def test_frozen_encoders_have_no_trainable_parameters():
    assert not any(p.requires_grad for p in build_encoder("efficientnet-lite0", pretrained=False).parameters())
    assert all(p.requires_grad for p in build_encoder("vit-scratch").parameters())


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(UnknownEncoderError, match="choose one of"):
        get_spec("clip")


def test_preprocess_squashes_to_the_encoder_size():
    from PIL import Image

    spec = get_spec("efficientnet-lite2")
    x = preprocess([Image.new("RGB", (300, 100), (255, 0, 0)), Image.new("L", (10, 40))], spec)
    assert x.shape == (2, 3, 260, 260)
    assert torch.allclose(x[0, 0], torch.full((260, 260), (1 - 0.498) / 0.502), atol=1e-4)


@pytest.mark.parametrize("kind", ["transformer", "lstm"])
def test_incremental_steps_match_full_forward(kind):
    dec = tiny_decoder(kind)
    f = feats(3)
    tokens = torch.randint(4, 24, (3, 6))
    with torch.no_grad():
        full = dec(f, tokens)
        static, dynamic = dec.init_state(f)
        steps = []
        for t in range(tokens.shape[1]):
            logits, dynamic = dec.step(tokens[:, t], static, dynamic)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_transformer_embeddings_are_tied_and_positions_small():
    dec = tiny_decoder("transformer")
    assert dec.head.weight is dec.tok_emb.weight
    assert dec.pos_emb.weight.std() < 0.1 and dec.feat_pos.std() < 0.1


def test_collate_pads_to_the_longest_caption():
    idx, tokens = collate([(3, [1, 5, 2]), (0, [1, 5, 6, 7, 2])], pad=0)
    assert idx.tolist() == [3, 0]
    assert tokens.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]


def test_tiny_config_builds_both_kinds():
    assert tiny_config("lstm").kind == "lstm"
    with pytest.raises(ValueError, match="unknown decoder"):
        from model.decoders import build_decoder

        build_decoder(DecoderConfig(kind="gru"))


def test_block_taps_come_from_the_same_pass_with_or_without_a_tuned_tail():
    """The maps of blocks inside the encoder are the pretrained network's, whether the tail is tuned (the trunk's
    blocks and the pretrained rest's alike) or not, and the grids are unchanged by asking for them."""
    from model.encoders import TunedTail

    cfg = ModelConfig("efficientnet-lite0", DecoderConfig(kind="transformer", vocab_size=30, feature_dim=1280,
                                                          grid_size=49, d_model=32, n_layers=1, n_heads=2,
                                                          hidden=32, max_len=10))
    model = CaptionModel(cfg, pretrained_encoder=False).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        plain = model.encoder(x)
        feats, pretrained, maps = model.grids(x, (10, 14))
        assert feats is pretrained and torch.allclose(pretrained, plain, atol=1e-5)
        assert [m.shape for m in maps] == [(2, 196, 112), (2, 49, 192)]
        tuned = TunedTail(model.encoder, 4)  # blocks 12-15 tuned: block 10 is in the trunk, 14 in the rest
        t_feats, t_pretrained, t_maps = tuned.with_pretrained(x, (10, 14))
        assert torch.allclose(t_pretrained, plain, atol=1e-5) and torch.allclose(t_feats, tuned(x), atol=1e-5)
        for a, b in zip(t_maps, maps):
            assert torch.allclose(a, b, atol=1e-5)
        with pytest.raises(ValueError, match=r"no block \[16\] to tap"):
            tuned.with_pretrained(x, (16,))
        # a tuned model's pretrained network alone (the glyph pass) gives what its shared pass gives
        tuned_model = CaptionModel(ModelConfig("efficientnet-lite0", cfg.decoder, tuned_blocks=4),
                                   pretrained_encoder=False).eval()
        _, shared_grid, shared_maps = tuned_model.grids(x, (10, 14))
        alone_grid, alone_maps = tuned_model.pretrained_grid(x, (10, 14))
        assert torch.allclose(alone_grid, shared_grid, atol=1e-5)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(alone_maps, shared_maps))
        assert torch.allclose(tuned_model.pretrained_grid(x)[0], shared_grid, atol=1e-5)
    spec = get_spec("vit-scratch")
    scratch = CaptionModel(ModelConfig("vit-scratch", tiny_config("transformer", feature_dim=spec.feature_dim,
                                                                  grid=spec.grid)), pretrained_encoder=False).eval()
    with pytest.raises(ValueError, match="no block maps to tap"):
        scratch.grids(torch.randn(1, 3, spec.image_size, spec.image_size), (1,))
