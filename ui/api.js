// The editor's only way to talk to the server: JSON in, JSON out, errors as ApiError with the
// server's { code, message, details } so callers can show per-node reports.

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

async function request(method, url, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
      init.headers['Content-Type'] ??= 'application/octet-stream';
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const e = data?.error;
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? `${method} ${url} failed with ${res.status}`, e?.details);
  }
  return data;
}

const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)).toString();

export const api = {
  nodes: () => request('GET', '/api/nodes'),
  roots: () => request('GET', '/api/roots'),
  files: (root, path = '', opts = {}) => request('GET', `/api/files?${q({ root, path, ...opts })}`),
  inspect: (root, path) => request('GET', `/api/inspect?${q({ root, path })}`),
  /** A file a run wrote, by the absolute path its result names: the answer says which root and where in it. */
  inspectWritten: (written) => request('GET', `/api/inspect?${q({ written })}`),
  /** Every .safetensors of a root with its format and family (`info`: "kohya · flux"). */
  models: (root) => request('GET', `/api/models?${q({ root })}`),
  /** Writes loraflow's sample files into samples/ of the input roots (what the examples name). */
  writeSamples: (roots) => request('POST', '/api/samples', roots ? { roots } : {}),

  recipes: () => request('GET', '/api/recipes'),
  recipe: (name) => request('GET', `/api/recipes/${encodeURIComponent(name)}`),
  saveRecipe: (name, recipe) => request('PUT', `/api/recipes/${encodeURIComponent(name)}`, { recipe }),
  deleteRecipe: (name) => request('DELETE', `/api/recipes/${encodeURIComponent(name)}`),
  examples: () => request('GET', '/api/examples'),
  example: (name) => request('GET', `/api/examples/${encodeURIComponent(name)}`),

  /** Text (JSON or YAML) → recipe object, checked by the server's schema. */
  parseRecipe: (text) => request('POST', '/api/recipe/parse', { text }),
  /** Recipe → canonical JSON or YAML text, exactly what `loraflow run` reads. */
  exportRecipe: (recipe, format) => request('POST', '/api/recipe/export', { recipe, format }),
  validateRecipe: (recipe, overrides = {}) => request('POST', '/api/recipe/validate', { recipe, overrides }),
  recipeFromFile: (blob, name) => request('POST', `/api/recipe-from-file?${q({ name })}`, blob),

  runs: () => request('GET', '/api/runs'),
  run: (id) => request('GET', `/api/runs/${encodeURIComponent(id)}`),
  startRun: (recipe, overrides = {}) => request('POST', '/api/runs', { recipe, overrides }),
  cancelRun: (id) => request('POST', `/api/runs/${encodeURIComponent(id)}/cancel`),
  /** { recipe, overrides, baked }: baked is the recipe with the overrides written in, as it ran. */
  runRecipe: (id) => request('GET', `/api/runs/${encodeURIComponent(id)}/recipe`),
  rerun: (id) => request('POST', `/api/runs/${encodeURIComponent(id)}/rerun`),
  /** { recipe | recipeName, overrides, axes: { name: [values] | "v1,v2" | glob }, points?, templates? } → one run per point. */
  startSweep: (body) => request('POST', '/api/sweeps', body),
  sweep: (id) => request('GET', `/api/sweeps/${encodeURIComponent(id)}`),
};
