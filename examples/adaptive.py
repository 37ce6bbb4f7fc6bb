"""An adaptive loop: each round's batch is chosen from the previous round's results.

    scalems-like run --cores 2 --runtime 300 examples/adaptive.py

Minimise f(x) = (x - 37)^2 over the integers: evaluate a batch, then search around the best point with a smaller
step, until the step is 1.
"""

import scalems_like as sl


@sl.function_app
def energy(x: int) -> int:
    return (x - 37) ** 2


best, step, rounds = 0, 64, 0
while True:
    candidates = [best + step * k for k in range(-4, 5)]
    results = energy.map(candidates)
    best = min(zip((future.result() for future in results), candidates, strict=True))[1]
    rounds += 1
    if step == 1:
        break
    step = max(1, step // 4)
print(f"minimum at x = {best} after {rounds} rounds")
