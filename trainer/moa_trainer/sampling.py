"""How many windows each domain contributes to a step: temperature over domain sizes.

Domain d's share of a step's `domains × batch_size` windows is ∝ n_d^(1 − 1/T) (n_d = its
training tokens). T = 1 gives every domain the same share (each expert its batch_size, the
stage-1 default); as T grows the shares approach proportional to size. Every domain keeps at
least one window so no expert misses a step.
"""

from __future__ import annotations

import math


def domain_counts(sizes: list[int], per_domain: int, temperature: float) -> list[int]:
    total = per_domain * len(sizes)
    exponent = 1.0 - 1.0 / temperature
    weights = [max(1, n) ** exponent for n in sizes]
    scale = sum(weights)
    ideal = [total * w / scale for w in weights]
    counts = [max(1, math.floor(x)) for x in ideal]
    # Largest remainder: hand out what flooring lost, biggest fractional parts first.
    order = sorted(range(len(sizes)), key=lambda i: (ideal[i] - math.floor(ideal[i]), -i), reverse=True)
    i = 0
    while sum(counts) < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts) > total:  # only when the floor of 1 pushed us over
        j = max(range(len(counts)), key=lambda k: (counts[k] - ideal[k], counts[k]))
        if counts[j] <= 1:
            break
        counts[j] -= 1
    return counts
