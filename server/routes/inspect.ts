import { Router } from 'express';
import { z } from 'zod';
import { SafetensorsError } from '../../src/safetensors/index.ts';
import { inspectOffThread } from '../../src/formats/inspect-off-thread.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import { resolveInRoot, type Roots } from '../paths.ts';

/** Tensors listed per answer unless asked otherwise, and at most; the totals always cover them all. */
export const INSPECT_TENSOR_LIMIT = { default: 1000, max: 10_000 };

const query = z.object({
  root: z.string().min(1),
  path: z.string().min(1),
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(0).max(INSPECT_TENSOR_LIMIT.max).default(INSPECT_TENSOR_LIMIT.default),
});

/**
 * `GET /api/inspect?root=…&path=…`: the header summary `loraflow inspect` prints (tensors, dtypes,
 * sizes, metadata with JSON values expanded) plus the detected adapter format. Reads the header
 * only, so a 24 GB checkpoint answers in milliseconds. The tensor list is a window (`offset`,
 * `limit`; `truncated` says when it is not all); a huge header is parsed off the event loop.
 */
export function inspectRouter(roots: Roots): Router {
  const r = Router();
  r.get('/inspect', async (req, res) => {
    const q = parseOr400(query, req.query, 'query');
    const file = await resolveInRoot(roots, q.root, q.path);
    try {
      const { summary, detection } = await inspectOffThread(file.real, { offset: q.offset, limit: q.limit });
      res.json({ root: q.root, path: file.rel, ...summary, detection, file: file.rel });
    } catch (e) {
      if (e instanceof SafetensorsError) {
        throw new ApiError(422, `safetensors_${e.code.toLowerCase()}`, e.message.replace(file.real, `${q.root}/${file.rel}`), { code: e.code, tensor: e.tensor });
      }
      throw e;
    }
  });
  return r;
}
