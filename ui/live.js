// The live event stream: one WebSocket to /ws that reconnects on its own and resumes from the last
// sequence number it saw (`?since=N`), so a dropped connection loses nothing and repeats nothing.

export class LiveEvents {
  constructor(onEvent, onState = () => {}) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastSeq = undefined;
    this.retryMs = 250;
    this.closed = false;
    this.connect();
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastSeq === undefined ? '' : `?since=${this.lastSeq}`;
    const ws = new WebSocket(`${proto}//${location.host}/ws${since}`);
    this.ws = ws;
    ws.onopen = () => {
      this.retryMs = 250;
      this.onState('open');
    };
    ws.onmessage = (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch {
        return;
      }
      if (e.type === 'hello') {
        // First connection: start counting from now; history comes from GET /api/runs.
        if (this.lastSeq === undefined) this.lastSeq = e.lastSeq;
        this.onEvent(e);
        return;
      }
      if (e.type === 'replay.reset') this.lastSeq = 0;
      if (typeof e.seq === 'number') {
        if (e.seq <= this.lastSeq) return;
        this.lastSeq = e.seq;
      }
      this.onEvent(e);
    };
    ws.onclose = () => {
      this.onState('closed');
      if (this.closed) return;
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    };
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }
}
