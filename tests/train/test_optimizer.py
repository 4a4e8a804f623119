"""The workers' AdamW: decay groups as the HF Trainer's, torch's fused kernel, the plain update."""

import torch

from meow.train.config import TrainConfig
from meow.train.worker import adamw


def test_fused_adamw_decays_matrices_only_and_updates_as_the_plain_loop():
    torch.manual_seed(0)
    matrix, scale = torch.nn.Parameter(torch.randn(8, 4)), torch.nn.Parameter(torch.ones(4))
    config = TrainConfig(learning_rate=1e-2, weight_decay=0.1)
    optimizer = adamw([matrix, scale], config)
    assert optimizer.defaults["fused"] is True
    assert [(g["weight_decay"], len(g["params"])) for g in optimizer.param_groups] == [(0.1, 1), (0.0, 1)]

    start = matrix.detach().clone()
    plain_matrix, plain_scale = (torch.nn.Parameter(p.detach().clone()) for p in (matrix, scale))
    plain = torch.optim.AdamW(
        [{"params": [plain_matrix], "weight_decay": 0.1}, {"params": [plain_scale], "weight_decay": 0.0}],
        lr=1e-2,
        foreach=False,
    )
    for _ in range(3):
        grads = torch.randn(8, 4), torch.randn(4)
        for params, opt in (((matrix, scale), optimizer), ((plain_matrix, plain_scale), plain)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    assert torch.allclose(matrix, plain_matrix, atol=1e-6) and torch.allclose(scale, plain_scale, atol=1e-6)
    assert (matrix - start).abs().min() > 1e-4  # three steps at lr 1e-2 moved every weight
