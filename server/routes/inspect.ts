import { Router } from 'express';
import { z } from 'zod';
import { SafetensorsError, withSafetensors } from '../../src/safetensors/index.ts';
import { summarizeSafetensors } from '../../src/safetensors/summary.ts';
import { detectFile } from '../../src/formats/index.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import { resolveInRoot, type Roots } from '../paths.ts';

const query = z.object({ root: z.string().min(1), path: z.string().min(1) });

/**
 * `GET /api/inspect?root=…&path=…`: the header summary `loraflow inspect` prints (tensors, dtypes,
 * sizes, metadata with JSON values expanded) plus the detected adapter format. Reads the header
 * only, so a 24 GB checkpoint answers in milliseconds.
 */
export function inspectRouter(roots: Roots): Router {
  const r = Router();
  r.get('/inspect', async (req, res) => {
    const q = parseOr400(query, req.query, 'query');
    const file = await resolveInRoot(roots, q.root, q.path);
    try {
      const summary = await withSafetensors(file.real, async (f) => ({ ...summarizeSafetensors(f), detection: await detectFile(f) }));
      res.json({ root: q.root, path: file.rel, ...summary, file: file.rel });
    } catch (e) {
      if (e instanceof SafetensorsError) {
        throw new ApiError(422, `safetensors_${e.code.toLowerCase()}`, e.message.replace(file.real, `${q.root}/${file.rel}`), { code: e.code, tensor: e.tensor });
      }
      throw e;
    }
  });
  return r;
}
