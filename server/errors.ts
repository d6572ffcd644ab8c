import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ZodError } from 'zod';
import { HTTP_STATUS, LoraflowError } from '../src/errors.ts';

/**
 * Every failure the API reports, as `{ error: { code, message, details } }`: a stable `code` for
 * programs, a sentence for people, and structured `details` (a per-node report, zod issues, …).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** zod issues as `path: message` lines with their paths kept, so a client can point at the field. */
export function zodDetails(e: ZodError): { path: string; message: string }[] {
  return e.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/** body-parser marks its failures with `type`; map each to a status and code a client can act on. */
const BODY_PARSER_ERRORS: Record<string, { status: number; code: string; message: (e: { limit?: number }) => string }> = {
  'entity.too.large': { status: 413, code: 'body_too_large', message: (e) => `request body is larger than the ${e.limit}-byte limit` },
  'entity.parse.failed': { status: 400, code: 'bad_json', message: () => 'request body is not valid JSON' },
  'encoding.unsupported': { status: 415, code: 'unsupported_encoding', message: () => 'request body encoding is not supported' },
  'charset.unsupported': { status: 415, code: 'unsupported_charset', message: () => 'request body charset is not supported' },
  'request.aborted': { status: 400, code: 'request_aborted', message: () => 'the client aborted the request' },
};

export const errorHandler: ErrorRequestHandler = (err, _req, res, next) => {
  if (res.headersSent) return next(err);
  if (err instanceof ApiError) {
    res.status(err.status).json(errorBody(err.code, err.message, err.details));
    return;
  }
  if (err instanceof LoraflowError) {
    res.status(HTTP_STATUS[err.fault]).json(errorBody(err.code.toLowerCase(), err.message));
    return;
  }
  if (err instanceof ZodError) {
    res.status(400).json(errorBody('invalid_body', 'request body does not match the expected shape', zodDetails(err)));
    return;
  }
  const bp = typeof err?.type === 'string' ? BODY_PARSER_ERRORS[err.type] : undefined;
  if (bp) {
    res.status(bp.status).json(errorBody(bp.code, bp.message(err)));
    return;
  }
  res.status(500).json(errorBody('internal', err instanceof Error ? err.message : String(err)));
};

export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('not_found', `no route for ${req.method} ${req.path}`));
};

/** Parses `value` with `schema`, turning a failure into a 400 that names what was wrong (`query`, `body`). */
export function parseOr400<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: ZodError } }, value: unknown, what: 'query' | 'body'): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ApiError(400, `invalid_${what}`, `request ${what} does not match the expected shape: ${r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')}`, zodDetails(r.error));
}
