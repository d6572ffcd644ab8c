"""The numpy baseline of bench/merge-ties.ts: the same TIES merge, dense, module by module.

    python3 bench/ties_numpy.py OUT A B RANK DENSITY

Per kohya module: ΔWᵢ = (alpha/r)·up@down (bf16 read, float32 math), trim each to its top
round(density·n) magnitudes (argpartition), elect the sign of the sum per entry, disjoint mean,
then a randomized SVD at RANK with loraflow's settings (oversample 8, 2 power iterations with the
sketches re-orthonormalised by QR between them) and the factors written as a safetensors file.
"""
import json, struct, sys
import numpy as np


def read(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = memoryview(f.read())
    header.pop('__metadata__', None)

    def tensor(name):
        t = header[name]
        a, b = t['data_offsets']
        raw = data[a:b]
        if t['dtype'] == 'BF16':
            return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(t['shape'])
        return np.frombuffer(raw, {'F32': np.float32, 'F16': np.float16}[t['dtype']]).astype(np.float32).reshape(t['shape'])

    return header, tensor


def write(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, np.float32).tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def randomized_svd(w, k, oversample=8, power_iters=2, seed=0):
    m, n = w.shape
    l = min(k + oversample, m, n)
    omega = np.random.default_rng(seed).standard_normal((n, l), dtype=np.float32)
    q, _ = np.linalg.qr(w @ omega)
    for _ in range(power_iters):
        p, _ = np.linalg.qr(w.T @ q)
        q, _ = np.linalg.qr(w @ p)
    bt = w.T @ q
    ub, s, vbt = np.linalg.svd(bt.astype(np.float64), full_matrices=False)
    u = q @ vbt.T[:, :k].astype(np.float32)
    return u, s[:k].astype(np.float32), ub[:, :k].T.astype(np.float32)


def main():
    out, pa, pb, rank, density = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    (ha, ta), (hb, tb) = read(pa), read(pb)
    modules = sorted(k[: -len('.lora_down.weight')] for k in ha if k.endswith('.lora_down.weight'))
    result = []
    for mod in modules:
        taus = []
        for h, t in ((ha, ta), (hb, tb)):
            down = t(f'{mod}.lora_down.weight')
            up = t(f'{mod}.lora_up.weight')
            r = down.shape[0]
            alpha = float(t(f'{mod}.alpha').reshape(-1)[0]) if f'{mod}.alpha' in h else r
            d = (up.reshape(up.shape[0], r) @ down.reshape(r, -1)) * np.float32(alpha / r)
            flat = d.reshape(-1)
            kk = max(1, round(density * flat.size))
            if kk < flat.size:
                cut = np.argpartition(np.abs(flat), flat.size - kk)[: flat.size - kk]
                flat[cut] = 0
            taus.append(d)
        total = taus[0] + taus[1]
        sign = np.sign(total)
        agree = [(np.sign(t) == sign) & (t != 0) for t in taus]
        num = sum(np.where(a, t, 0) for a, t in zip(agree, taus))
        cnt = sum(a.astype(np.float32) for a in agree)
        merged = np.where(cnt > 0, num / np.maximum(cnt, 1), 0).astype(np.float32)
        u, s, vt = randomized_svd(merged, rank)
        root = np.sqrt(s)
        result += [(f'{mod}.lora_up.weight', u * root), (f'{mod}.lora_down.weight', root[:, None] * vt), (f'{mod}.alpha', np.array(rank, np.float32))]
    write(out, result)
    print(json.dumps({'modules': len(modules)}))


main()
