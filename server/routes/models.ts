import { Router } from 'express';
import { z } from 'zod';
import { parseOr400 } from '../errors.ts';
import { ModelCatalog } from '../model-catalog.ts';
import type { Roots } from '../paths.ts';
import { writeSamplesInto } from '../sample-files.ts';

const modelsQuery = z.object({ root: z.string().min(1) });
const samplesBody = z.strictObject({ roots: z.array(z.string().min(1)).min(1).max(20).optional() }).default({});

/**
 * `GET /api/models?root=loras`: every .safetensors file of a root with its format and family (what
 * the editor's file widgets show beside each name), from the headers only, cached per file version.
 * `POST /api/samples`: writes loraflow's sample files into `samples/` of the input roots (or the
 * roots named), where the examples in graphs/ look for them.
 */
export function modelsRouter(roots: Roots, inputKinds: readonly string[]): Router {
  const r = Router();
  const catalog = new ModelCatalog(roots);
  let writing: Promise<unknown> = Promise.resolve();

  r.get('/models', async (req, res) => {
    const q = parseOr400(modelsQuery, req.query, 'query');
    res.json(await catalog.list(q.root));
  });

  r.post('/samples', async (req, res) => {
    const body = parseOr400(samplesBody, req.body ?? {}, 'body');
    // one write at a time: two clicks must not rename into the same folder at once
    const run = writing.then(() => writeSamplesInto(roots, body.roots ?? inputKinds));
    writing = run.catch(() => undefined);
    res.json({ written: await run });
  });
  return r;
}
