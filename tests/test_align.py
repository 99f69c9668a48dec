import pytest
import torch

from latentrl.latent.align import get_alignment, ridge_matrix
from tests.conftest import tiny_model


def test_ridge_solves_its_least_squares_problem():
    torch.manual_seed(0)
    w_in, w_out, lam = torch.randn(50, 8, dtype=torch.float64), torch.randn(50, 8, dtype=torch.float64), 1e-2
    a = ridge_matrix(w_in, w_out, lam)
    # Normal equations of min ||W_out A - W_in||^2 + lam ||A||^2: W_out^T (W_out A - W_in) + lam A = 0.
    grad = w_out.T @ (w_out @ a - w_in) + lam * a
    assert grad.abs().max() < 1e-10
    # And it beats a perturbed solution.
    loss = lambda x: ((w_out @ x - w_in) ** 2).sum() + lam * (x**2).sum()  # noqa: E731
    assert loss(a) < loss(a + 1e-3 * torch.randn_like(a))


def test_ridge_is_identity_for_tied_embeddings(tok):
    model = tiny_model("qwen2", len(tok))  # tied
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    a = get_alignment(model, "ridge", 1e-5).matrix
    assert torch.allclose(a, torch.eye(a.shape[0], dtype=a.dtype), atol=1e-4)


def test_ridge_is_not_identity_for_untied_embeddings(tok):
    a = get_alignment(tiny_model("llama", len(tok)), "ridge").matrix
    assert (a - torch.eye(a.shape[0], dtype=a.dtype)).abs().max() > 0.1


@pytest.mark.parametrize("mode", ["norm", "ridge"])
def test_aligned_vectors_have_mean_input_embedding_norm(model, mode):
    align = get_alignment(model, mode)
    target = model.get_input_embeddings().weight.norm(dim=1).mean()
    out = align(torch.randn(5, model.config.hidden_size, dtype=model.dtype) * 7)
    assert torch.allclose(out.norm(dim=-1), target.expand(5), rtol=1e-6)


def test_norm_keeps_direction_and_raw_is_identity(model):
    h = torch.randn(3, model.config.hidden_size, dtype=model.dtype)
    cos = torch.nn.functional.cosine_similarity(get_alignment(model, "norm")(h), h, dim=-1)
    assert torch.allclose(cos, torch.ones(3, dtype=h.dtype))
    assert torch.equal(get_alignment(model, "raw")(h), h)


def test_alignment_is_cached_per_model_and_mode(model):
    assert get_alignment(model, "ridge") is get_alignment(model, "ridge")
    assert get_alignment(model, "ridge", 1e-3) is not get_alignment(model, "ridge")
    with pytest.raises(ValueError, match="unknown alignment mode"):
        get_alignment(model, "cca")


def test_target_norm_is_what_the_embedding_module_feeds_the_decoder(tok):
    """Gemma scales embeddings by sqrt(d) inside its embedding module; latents must enter at that scale."""
    from tests.architectures import tiny

    model = tiny("gemma2", "eager", len(tok))
    weight_norm = model.get_input_embeddings().weight.norm(dim=1).mean()
    target = get_alignment(model, "norm").target_norm
    assert torch.allclose(target, weight_norm * model.config.hidden_size**0.5, rtol=1e-5)
