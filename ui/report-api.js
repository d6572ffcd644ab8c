// The report routes (server/routes/report.ts): pictures rendered on the server by the same code as
// `loraflow inspect --plot`, and the block schemes for the block-weight editor.

async function json(method, url, body) {
  const res = await fetch(url, body === undefined ? { method } : { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const data = await res.json().catch(() => undefined);
  if (!res.ok) throw new Error(data?.error?.message ?? `${method} ${url} failed with ${res.status}`);
  return data;
}

const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [v].flat()) if (x !== undefined && x !== null) q.append(k, x);
  return q.toString();
};

export const reportApi = {
  schemes: () => json('GET', '/api/report/schemes'),
  /** Any weight spec → { weights: {id: value}, spec } by the scheme's own parser. */
  blockWeights: (scheme, weights) => json('POST', '/api/report/block-weights', { scheme, weights }),
  /** Strength view of LoRA files of one root (several: side by side with their cosine), relative to a base when given. */
  strength: (root, paths, base) => json('GET', `/api/report/strength?${query({ root, path: paths, baseRoot: base?.root, base: base?.path })}`),
  /** A dropped .safetensors (its header bytes): LoRA, checkpoint or other, with recipe or not, and where the roots hold it. */
  dropped: async (header, name, size) => {
    const res = await fetch(`/api/files/dropped?${query({ name, size })}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: header });
    const data = await res.json().catch(() => undefined);
    if (!res.ok) throw new Error(data?.error?.message ?? `reading ${name} failed with ${res.status}`);
    return data;
  },
};
