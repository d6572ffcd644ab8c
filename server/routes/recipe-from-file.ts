import { Router } from 'express';
import { PROVENANCE_KEY, ProvenanceError, decodeProvenance, storedProvenance, type RecoveredRecipe } from '../../src/graph/index.ts';
import { ApiError, zodDetails } from '../errors.ts';
import { DEFAULT_MAX_HEADER_UPLOAD, readUploadedHeader } from '../header-upload.ts';

/**
 * `POST /api/recipe-from-file` with the bytes of a .safetensors file written by loraflow (or only
 * its first 8 + N header bytes, which is what the editor sends) → the recipe stored in its metadata,
 * ready to load and run again.
 */
export function recipeFromFileRouter(maxHeader = DEFAULT_MAX_HEADER_UPLOAD): Router {
  const r = Router();
  r.post('/recipe-from-file', async (req, res) => {
    const raw = typeof req.query.name === 'string' ? req.query.name : 'uploaded file';
    const name = raw.replace(/[^\w.\- ]/g, '_').slice(0, 200);
    let header;
    try {
      header = await readUploadedHeader(req, name, maxHeader);
    } finally {
      if (!req.complete) {
        // Only the header matters (or the upload was refused): answer, then drop the connection
        // rather than reading the rest of a possibly huge upload.
        res.set('Connection', 'close');
        res.on('finish', () => req.destroy());
      }
    }
    const stored = storedProvenance(header.metadata);
    if (stored === undefined) {
      const keys = Object.keys(header.metadata ?? {});
      throw new ApiError(422, 'no_recipe', `${name} carries no loraflow recipe (no "${PROVENANCE_KEY}" metadata; it has ${keys.length > 0 ? keys.join(', ') : 'no metadata'}); only files saved by loraflow do`);
    }
    res.json({ file: name, ...recovered(stored, name) });
  });
  return r;
}

/** The recovered recipe; a broken record is the uploader's (422), with zod's issues as details. */
function recovered(stored: string, name: string): RecoveredRecipe {
  try {
    return decodeProvenance(stored, name);
  } catch (e) {
    if (e instanceof ProvenanceError) throw new ApiError(422, 'bad_provenance', e.message, e.zodError && zodDetails(e.zodError));
    throw e;
  }
}
