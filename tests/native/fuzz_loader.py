"""Feed randomly corrupted .efm files to the loader (and run the ones it accepts). Run as a script
in a subprocess by test_fuzz.py, so that a crash fails the test instead of killing pytest.
Prints "accepted=<n> refused=<n>"; exits 0 when nothing crashed."""

import sys

import numpy as np

from edgefleet import _native

from .efm_cases import small_cnn, small_encoder, small_islands


def mutate(rng, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.integers(0, 5)
    if kind == 0:                                    # truncate anywhere
        return bytes(b[: rng.integers(0, len(b))])
    if kind == 1:                                    # flip a few random bits anywhere
        for _ in range(rng.integers(1, 8)):
            b[rng.integers(0, len(b))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 2:                                  # random bytes in the tables (header .. data)
        end = min(len(b), 2048)
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(0, end)] = int(rng.integers(0, 256))
    elif kind == 3:                                  # a random 32-bit word in the tables
        end = min(len(b), 2048) - 4
        pos = int(rng.integers(0, end // 4)) * 4
        b[pos:pos + 4] = int(rng.choice([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, rng.integers(0, 2 ** 32)])).to_bytes(4, "little")
    else:                                            # append junk
        b += bytes(rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8))
    return bytes(b)


def main(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [(small_cnn()[0], rng.standard_normal((2, 2, 4, 4)).astype(np.float32)),
             (small_encoder()[0], rng.integers(0, 20, (2, 6)).astype(np.int64)),
             (small_islands()[0], rng.standard_normal((2, 3, 8)).astype(np.float32))]
    accepted = refused = 0
    for i in range(n):
        data, x = cases[i % len(cases)]
        bad = mutate(rng, data)
        try:
            m = _native.Model.from_bytes(bad, verify=bool(i % 4 == 0))  # mostly bypass the checksum
        except _native.NativeError:
            refused += 1
            continue
        accepted += 1
        try:
            m.run([x])
        except _native.NativeError:
            pass
    print(f"accepted={accepted} refused={refused}")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
