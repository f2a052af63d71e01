"""Precomputed clipped-std bias factors (see ``stats.clipped_std_bias``).

Regenerate with ``python -m daskref.kernels._clip_tables``.
"""

PRECOMPUTED: dict = {
    (3.0, 3, None): [
        0.564262,
        0.723106,
        0.797513,
        0.840767,
        0.868670,
        0.888296,
        0.903022,
        0.912947,
        0.920842,
        0.926373,
        0.932063,
        0.940392,
        0.945573,
        0.953483,
        0.958573,
        0.963055,
        0.965134,
        0.969350,
        0.971968,
        0.974048,
        0.975627,
        0.977004,
        0.978657,
        0.979984,
        0.980906,
        0.981203,
        0.982313,
        0.983209,
        0.982728,
        0.983674,
        0.983632,
        0.983926,
        0.984318,
        0.984805,
        0.984606,
    ],
}

if __name__ == "__main__":
    from daskref.kernels import stats

    table = stats._std_bias_table(3.0, 3, None, budget=4_000_000)
    print("PRECOMPUTED[(3.0, 3, None)] = [")
    for v in table:
        print(f"    {v:.6f},")
    print("]")
