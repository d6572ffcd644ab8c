import type { Readable } from 'node:stream';
import { parseHeader, SafetensorsError, type ParsedHeader } from '../src/safetensors/index.ts';
import { ApiError } from './errors.ts';

/** A loraflow header is a few KB; real LoRA headers stay well under a megabyte. */
export const DEFAULT_MAX_HEADER_UPLOAD = 16 * 1024 * 1024;

/**
 * Reads a safetensors upload up to the end of its JSON header and parses it. The body may be the
 * whole file or just its first 8 + N bytes (what the editor sends: it slices the header off the
 * dropped file so a 300 MB LoRA never crosses the wire). Whatever follows the header is not kept.
 */
export async function readUploadedHeader(body: Readable, name: string, maxHeader = DEFAULT_MAX_HEADER_UPLOAD): Promise<ParsedHeader> {
  const all = await readHeaderBytes(body, name, maxHeader);
  if (all.byteLength < 8) {
    throw new ApiError(400, 'not_safetensors', `${name}: ${all.byteLength} bytes is too short for a safetensors file (it starts with an 8-byte header length)`);
  }
  const headerLen = Number(all.readBigUInt64LE(0));
  if (all.byteLength < 8 + headerLen) {
    throw new ApiError(400, 'truncated_header', `${name}: header claims ${headerLen} bytes but only ${all.byteLength - 8} were sent`);
  }
  const headerBytes = all.subarray(8, 8 + headerLen);
  try {
    // Only the header came (or matters): check it against the size it declares itself.
    return parseHeader(name, headerBytes, 8 + headerLen + declaredDataBytes(headerBytes));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new ApiError(400, `safetensors_${e.code.toLowerCase()}`, e.message, { code: e.code, tensor: e.tensor });
    throw e;
  }
}

/** The data size the header describes (largest end offset); 0 when it cannot be read, so parseHeader reports why. */
function declaredDataBytes(headerBytes: Uint8Array): number {
  try {
    const raw = JSON.parse(new TextDecoder().decode(headerBytes)) as Record<string, { data_offsets?: unknown }>;
    let end = 0;
    for (const [k, v] of Object.entries(raw)) {
      const off = k === '__metadata__' ? undefined : v?.data_offsets;
      if (Array.isArray(off) && typeof off[1] === 'number' && Number.isSafeInteger(off[1])) end = Math.max(end, off[1]);
    }
    return end;
  } catch {
    return 0;
  }
}

/**
 * Collects the stream until it holds the 8-byte length and the N header bytes it announces, then
 * stops keeping data (the rest drains unbuffered). Refuses an announced N over `maxHeader` at once.
 * Resolves with fewer bytes when the stream ends early.
 */
function readHeaderBytes(body: Readable, name: string, maxHeader: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    let want = Infinity;
    const done = (err?: Error) => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.resume();
      if (err) return reject(err);
      const buf = Buffer.concat(chunks);
      resolve(buf.subarray(0, Math.min(buf.byteLength, want)));
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      got += chunk.byteLength;
      if (want === Infinity && got >= 8) {
        const n = Buffer.concat(chunks).readBigUInt64LE(0);
        if (n > BigInt(maxHeader)) {
          return done(new ApiError(413, 'header_too_large', `${name}: header claims ${n} bytes, over the ${maxHeader}-byte limit for uploads (is this a safetensors file?)`));
        }
        want = 8 + Number(n);
      }
      if (got >= want) done();
    };
    const onEnd = () => done();
    const onError = (e: Error) => done(e);
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
  });
}
