import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { Router } from 'express';
import { z } from 'zod';
import { SafetensorsError } from '../../src/safetensors/index.ts';
import { inspectOffThread } from '../../src/formats/inspect-off-thread.ts';
import { ApiError, parseOr400 } from '../errors.ts';
import { isInside, resolveInRoot, type Roots } from '../paths.ts';

/** Tensors listed per answer unless asked otherwise, and at most; the totals always cover them all. */
export const INSPECT_TENSOR_LIMIT = { default: 1000, max: 10_000 };

const query = z.object({
  root: z.string().min(1).optional(),
  path: z.string().min(1).optional(),
  /** Instead of root and path: a file a run wrote, by the absolute path its result names. */
  written: z.string().min(1).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(0).max(INSPECT_TENSOR_LIMIT.max).default(INSPECT_TENSOR_LIMIT.default),
});

/**
 * The root holding an absolute path a run reported (the longest root that is a prefix of it, so
 * `output` wins over a root above it), and the path inside it; resolveInRoot then proves it.
 */
async function locateWritten(roots: Roots, abs: string): Promise<{ root: string; path: string }> {
  if (!path.isAbsolute(abs)) throw new ApiError(400, 'bad_path', `written "${abs}" is not an absolute path`);
  const real = await realpath(abs).catch(() => path.resolve(abs));
  const hits: { root: string; path: string; len: number }[] = [];
  for (const [root, dir] of Object.entries(roots)) {
    for (const [d, p] of [[path.resolve(dir), path.resolve(abs)], [await realpath(dir).catch(() => dir), real]] as const) {
      if (isInside(d, p) && d !== p) hits.push({ root, path: path.relative(d, p).split(path.sep).join('/'), len: d.length });
    }
  }
  const best = hits.sort((a, b) => b.len - a.len)[0];
  if (!best) throw new ApiError(403, 'path_escapes_root', `${path.basename(abs)} is not inside any root (${Object.keys(roots).join(', ')})`);
  return best;
}

/**
 * `GET /api/inspect?root=…&path=…` (or `?written=/abs/path` for a file a run wrote): the header summary `loraflow inspect` prints (tensors, dtypes,
 * sizes, metadata with JSON values expanded) plus the detected adapter format. Reads the header
 * only, so a 24 GB checkpoint answers in milliseconds. The tensor list is a window (`offset`,
 * `limit`; `truncated` says when it is not all); a huge header is parsed off the event loop.
 */
export function inspectRouter(roots: Roots): Router {
  const r = Router();
  r.get('/inspect', async (req, res) => {
    const q = parseOr400(query, req.query, 'query');
    const where = q.written !== undefined ? await locateWritten(roots, q.written) : { root: q.root, path: q.path };
    if (where.root === undefined || where.path === undefined) throw new ApiError(400, 'bad_query', 'give "root" and "path", or "written"');
    const file = await resolveInRoot(roots, where.root, where.path);
    try {
      const { summary, detection } = await inspectOffThread(file.real, { offset: q.offset, limit: q.limit });
      // the file by its root-relative name only: the server's absolute paths are not the page's business
      res.json({ ...summary, root: where.root, path: file.rel, name: `${where.root}/${file.rel}`, detection, file: file.rel });
    } catch (e) {
      if (e instanceof SafetensorsError) {
        throw new ApiError(422, `safetensors_${e.code.toLowerCase()}`, e.message.replace(file.real, `${where.root}/${file.rel}`), { code: e.code, tensor: e.tensor });
      }
      throw e;
    }
  });
  return r;
}
