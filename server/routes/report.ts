import { Router } from 'express';
import { z } from 'zod';
import { readLora, type LoraHandle } from '../../src/formats/read.ts';
import { blockSchemes, FAMILIES } from '../../src/formats/families.ts';
import { LoraflowError } from '../../src/errors.ts';
import { blockGrid, blockPresets, compactSpec } from '../../src/report/block-grid.ts';
import { strengthView } from '../../src/report/views.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import { resolveInRoot, type Roots } from '../paths.ts';

const strengthQuery = z.object({
  root: z.string().min(1),
  /** One or more files of the root (repeat `path=` to compare several). */
  path: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(8)]).transform((p) => (Array.isArray(p) ? p : [p])),
  baseRoot: z.string().min(1).optional(),
  base: z.string().min(1).optional(),
});

const weightsBody = z.object({
  /** The scheme's index in GET /api/report/schemes. */
  scheme: z.number().int().min(0),
  weights: z.union([z.string().min(1), z.array(z.number().finite())]),
});

/** The block schemes the editor's block-weight editor offers: ids on their grid, presets, and which families use each. */
function schemesJson() {
  return blockSchemes().map((s, index) => ({
    index,
    describe: s.describe,
    label: s.describe.replace(/ \(.*$/, ''),
    ids: s.ids,
    grid: blockGrid(s.ids),
    presets: blockPresets(s.ids),
    families: FAMILIES.filter((f) => f.blocks === s).map((f) => f.id),
  }));
}

/**
 * Pictures for the editor, from the same renderer as `loraflow inspect --plot`:
 *  - `GET /api/report/schemes`: every family's block ids, grid and presets (the block-weight editor);
 *  - `POST /api/report/block-weights`: a weight spec read by the scheme's own parser (one value per
 *    id), and written back compactly, so the editor shows exactly what a run will use;
 *  - `GET /api/report/strength?root=&path=[&path=…][&baseRoot=&base=]`: the strength view (SVG) of
 *    LoRA files in a root, side by side when several, relative to a base when given.
 */
export function reportRouter(roots: Roots): Router {
  const r = Router();
  r.get('/report/schemes', (_req, res) => {
    res.json({ schemes: schemesJson() });
  });
  r.post('/report/block-weights', (req, res) => {
    const b = parseOr400(weightsBody, req.body, 'body');
    const scheme = blockSchemes()[b.scheme];
    if (!scheme) throw new ApiError(400, 'unknown_scheme', `no block scheme #${b.scheme} (there are ${blockSchemes().length})`);
    try {
      const weights = Object.fromEntries(scheme.parse(b.weights));
      res.json({ weights, spec: compactSpec(weights, scheme.ids) });
    } catch (e) {
      if (e instanceof LoraflowError) throw new ApiError(422, 'bad_block_weights', e.message);
      throw e;
    }
  });
  r.get('/report/strength', async (req, res) => {
    const q = parseOr400(strengthQuery, req.query, 'query');
    if ((q.base === undefined) !== (q.baseRoot === undefined)) throw new ApiError(400, 'invalid_query', 'base and baseRoot go together');
    const files = await Promise.all(q.path.map((p) => resolveInRoot(roots, q.root, p)));
    const base = q.base ? await resolveInRoot(roots, q.baseRoot!, q.base) : undefined;
    // messages name files as the editor does (root/path), never by their place on the server's disk
    const shown = (m: string) => [...files.map((f) => [f.real, `${q.root}/${f.rel}`] as const), ...(base ? [[base.real, `${q.baseRoot}/${base.rel}`] as const] : [])].reduce((s, [a, b]) => s.split(a).join(b), m);
    const sets: LoraHandle[] = [];
    try {
      for (const f of files) sets.push(await readLora(f.real));
      const view = await strengthView(sets, files.map((f) => f.rel), { base: base?.real });
      res.json({ view: { kind: view.kind, title: view.title, svg: view.svg }, data: view.data });
    } catch (e) {
      if (e instanceof LoraflowError) throw new LoraflowError(e.fault, e.code, shown(e.message));
      throw e;
    } finally {
      await Promise.all(sets.map((s) => s.close()));
    }
  });
  return r;
}
