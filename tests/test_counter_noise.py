"""The counter-based trajectory noise: exact integer arithmetic, Gaussian marginals,
independent rows, draws and elements, and rows that ignore the batch they are in."""

import numpy as np
import pytest
import torch
from scipy import stats

from latent_abstractions.diffusion.counter_noise import CounterNoise, _mul32, mix32, uniform_bits
from latent_abstractions.sampling.recording import stream_seed


def test_mul32_is_the_product_mod_2_32_without_overflow():
    values = [0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 123456789]
    for factor in (0x7FEB352D, 0x846CA68B):
        got = _mul32(torch.tensor(values, dtype=torch.int64), factor).tolist()
        assert got == [(v * factor) % 2**32 for v in values]


def test_mix32_is_a_bijection_on_32_bit_values():
    inputs = torch.arange(0, 2**32, 2**32 // 65536 + 7, dtype=torch.int64)
    outputs = mix32(inputs.clone())
    assert int(outputs.min()) >= 0 and int(outputs.max()) < 2**32
    assert len(torch.unique(outputs)) == len(inputs)


def test_uniform_bits_are_uniform_over_32_bits():
    keys = torch.tensor([stream_seed(5, 0, j) for j in range(64)], dtype=torch.int64)
    bits = uniform_bits(keys, 0, 4096).double().numpy().ravel() / 2**32
    assert stats.kstest(bits, "uniform").pvalue > 1e-3
    # every bit position is set about half the time
    ints = uniform_bits(keys, 0, 4096).numpy().ravel()
    ones = np.array([((ints >> b) & 1).mean() for b in range(32)])
    assert np.abs(ones - 0.5).max() < 0.01


def test_noise_is_standard_gaussian_and_uncorrelated():
    noise = CounterNoise([stream_seed(1, 0, j) for j in range(1000)])
    first, second = noise((1000, 3, 16, 16)), noise((1000, 3, 16, 16))
    z = first.double().numpy().ravel()
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert stats.kstest(z, "norm").pvalue > 1e-3
    pairs = {
        "neighbouring rows": (first[:-1], first[1:]),
        "successive draws": (first, second),
        "neighbouring elements": (first.flatten()[:-1], first.flatten()[1:]),
    }
    for name, (a, b) in pairs.items():
        assert abs(np.corrcoef(a.flatten(), b.flatten())[0, 1]) < 0.005, name


def test_a_row_depends_on_its_key_and_draw_count_alone():
    seeds = [stream_seed(3, 0, j) for j in range(9)]
    whole = CounterNoise(seeds)
    split = [CounterNoise(seeds[:4]), CounterNoise(seeds[4:])]
    for shape in ((3, 5), (7,), (2, 2, 2)):
        together = whole((9, *shape))
        assert torch.equal(torch.cat([part((len(part.keys), *shape)) for part in split]), together)
    again = CounterNoise(seeds)
    assert not torch.equal(again((9, 7)), again((9, 7)))  # each call is a new draw


def test_noise_refuses_a_wrong_row_count_and_negative_keys():
    with pytest.raises(ValueError, match="noise for 3 rows asked of 2 trajectory keys"):
        CounterNoise([1, 2])((3, 4))
    with pytest.raises(ValueError, match="non-negative"):
        CounterNoise([-1])
