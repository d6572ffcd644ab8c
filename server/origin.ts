import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { errorBody } from './errors.ts';

/** Host names that always mean this machine. */
const LOOPBACK_NAMES = new Set(['localhost', 'localhost.', 'ip6-localhost', 'ip6-loopback']);

/** True for `localhost`, `*.localhost`, 127.0.0.0/8, ::1 and the IPv4-mapped loopback. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (LOOPBACK_NAMES.has(h) || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** `host[:port]` as sent in a Host header, split; undefined when it is not a plain authority. */
function parseAuthority(authority: string): { hostname: string; port: string } | undefined {
  try {
    const u = new URL(`http://${authority}`);
    if (u.username || u.password || u.pathname !== '/' || u.search || u.hash) return undefined;
    return { hostname: u.hostname, port: u.port };
  } catch {
    return undefined;
  }
}

export interface OriginPolicy {
  /** Set with --allow-public: the server is reachable under non-loopback names. */
  allowPublic: boolean;
}

export type OriginVerdict = { ok: true } | { ok: false; message: string };

/**
 * The browser-facing guard (ComfyUI's origin-only middleware, made stricter):
 *  - a loopback-only server answers only to loopback Host names, which defeats DNS rebinding
 *    (`evil.example` resolving to 127.0.0.1 still sends `Host: evil.example`);
 *  - a request that carries an Origin is served only when that origin is the page's own
 *    (same host and port as the Host header) and, unless --allow-public, a loopback host;
 *    `Origin: null` (sandboxed frames, file://) is refused.
 * Requests without Origin (curl, the CLI, same-origin GETs) pass: browsers always send Origin on
 * cross-origin requests and WebSocket upgrades, which is what this stops.
 */
export function checkOrigin(req: Pick<IncomingMessage, 'headers'>, policy: OriginPolicy): OriginVerdict {
  const hostHeader = req.headers.host;
  const host = hostHeader ? parseAuthority(hostHeader) : undefined;
  if (!host) return { ok: false, message: 'missing or malformed Host header' };
  if (!policy.allowPublic && !isLoopbackHost(host.hostname)) {
    return { ok: false, message: `Host "${hostHeader}" is not a loopback name; this server only answers on loopback (start it with --allow-public to change that)` };
  }
  const origin = req.headers.origin;
  if (origin === undefined) return { ok: true };
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return { ok: false, message: `Origin "${origin}" is not a URL` };
  }
  if (o.protocol !== 'http:' && o.protocol !== 'https:') return { ok: false, message: `cross-origin request from "${origin}" refused` };
  if (!policy.allowPublic && !isLoopbackHost(o.hostname)) {
    return { ok: false, message: `cross-origin request from "${origin}" refused: only pages served from a loopback host may call this server` };
  }
  const originPort = o.port || (o.protocol === 'https:' ? '443' : '80');
  const hostPort = host.port || '80';
  if (o.hostname.toLowerCase() !== host.hostname.toLowerCase() || originPort !== hostPort) {
    return { ok: false, message: `cross-origin request from "${origin}" to "${hostHeader}" refused` };
  }
  return { ok: true };
}

export function originGuard(policy: OriginPolicy): RequestHandler {
  return (req, res, next) => {
    const v = checkOrigin(req, policy);
    if (v.ok) return next();
    res.status(403).json(errorBody('forbidden_origin', v.message));
  };
}
