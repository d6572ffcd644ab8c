import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { EventHub, ServerEvent } from './event-hub.ts';
import { checkOrigin, type OriginPolicy } from './origin.ts';

/** Client → server messages are tiny; anything bigger is abuse. */
const MAX_CLIENT_MESSAGE = 16 * 1024;

export interface WsOptions {
  hub: EventHub;
  policy: OriginPolicy;
  /** Sent on connect so a fresh client knows the queue without a second request. */
  snapshot: () => Record<string, unknown>;
}

/**
 * `/ws`: pushes every hub event as one JSON text frame. `?since=N` (or a `{"type":"replay","since":N}`
 * message) first replays the events after N, then continues live, with no gap and no duplicate: the
 * replay and the live stream are stitched by sequence number.
 */
export function attachWebSocket(server: Server, opts: WsOptions): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_MESSAGE });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuse(socket, 404, 'Not Found', `no WebSocket endpoint at ${url.pathname}`);
    const verdict = checkOrigin(req, opts.policy);
    if (!verdict.ok) return refuse(socket, 403, 'Forbidden', verdict.message);
    const sinceRaw = url.searchParams.get('since');
    const since = sinceRaw === null ? undefined : Number(sinceRaw);
    if (since !== undefined && !(Number.isSafeInteger(since) && since >= 0)) {
      return refuse(socket, 400, 'Bad Request', `since must be a non-negative integer, got "${sinceRaw}"`);
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveClient(ws, opts, since));
  });
  return wss;
}

function serveClient(ws: WebSocket, opts: WsOptions, since: number | undefined): void {
  // The highest seq this client has been sent; live events at or below it were already replayed.
  let sent = opts.hub.lastSeq;
  const send = (msg: unknown) => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  };
  const replay = (requested: number) => {
    let from = requested;
    if (from > opts.hub.lastSeq) {
      // The client counts from an earlier server process: its numbers mean nothing here.
      send({ type: 'replay.reset', since: requested, lastSeq: opts.hub.lastSeq, message: 'the server restarted; replaying everything it has' });
      from = 0;
    }
    const { events, complete } = opts.hub.since(from);
    if (!complete) send({ type: 'replay.incomplete', since: from, firstSeq: opts.hub.firstSeq, message: 'older events are no longer kept; fetch /api/runs for full run logs' });
    for (const e of events) send(e);
    sent = opts.hub.lastSeq;
  };
  const unsubscribe = opts.hub.subscribe((e: ServerEvent) => {
    if (e.seq <= sent) return;
    sent = e.seq;
    send(e);
  });
  send({ type: 'hello', lastSeq: opts.hub.lastSeq, ...opts.snapshot() });
  if (since !== undefined) replay(since);

  ws.on('message', (data, isBinary) => {
    if (isBinary) return send({ type: 'error', message: 'binary messages are not understood' });
    let msg: unknown;
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return send({ type: 'error', message: 'message is not JSON' });
    }
    const m = msg as { type?: unknown; since?: unknown };
    if (m.type === 'replay' && typeof m.since === 'number' && Number.isSafeInteger(m.since) && m.since >= 0) {
      // Re-sends from `since` even what already went out live: the client asked, and it dedupes by seq.
      return replay(m.since);
    }
    if (m.type === 'ping') return send({ type: 'pong', lastSeq: opts.hub.lastSeq });
    send({ type: 'error', message: 'unknown message; expected {"type":"replay","since":N} or {"type":"ping"}' });
  });
  ws.on('close', unsubscribe);
  ws.on('error', unsubscribe);
}

function refuse(socket: Duplex, status: number, reason: string, message: string): void {
  const body = JSON.stringify({ error: { code: status === 403 ? 'forbidden_origin' : 'bad_upgrade', message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
