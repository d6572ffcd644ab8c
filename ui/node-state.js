// What a node shows about the current run and about validation: a coloured outline and title box
// per state, a progress bar along its bottom edge, a badge (percent, time, "cached") in its title
// bar, and problems marked on the exact input socket or param widget they concern, with the message
// under the node.

export const STATE_COLOURS = {
  pending: '#59616e',
  running: '#5b9cf5',
  done: '#4caf7a',
  cached: '#7f8c9a',
  error: '#e2555a',
  cancelled: '#e0a526',
};

const PROBLEM = '#e2555a';

function wrap(ctx, text, width) {
  const words = String(text).split(/\s+/);
  const lines = [];
  let line = '';
  for (const w of words) {
    const next = line ? `${line} ${w}` : w;
    if (ctx.measureText(next).width > width && line) {
      lines.push(line);
      line = w;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

function badgeText(lf) {
  if (lf.state === 'running' && lf.progress) return `${Math.round((100 * lf.progress.value) / Math.max(1, lf.progress.max))}%`;
  if (lf.state === 'running') return 'running';
  if (lf.state === 'done' && typeof lf.ms === 'number') return lf.ms >= 1000 ? `${(lf.ms / 1000).toFixed(1)} s` : `${lf.ms} ms`;
  if (lf.state === 'cached') return 'cached';
  if (lf.state === 'error') return 'error';
  if (lf.state === 'cancelled') return 'cancelled';
  return '';
}

/** litegraph calls this from onDrawForeground, with the context translated to the node's top-left. */
export function drawNodeState(node, ctx, LiteGraph) {
  const lf = node.lf;
  if (!lf) return;
  const [w, h] = node.size;
  const titleH = LiteGraph.NODE_TITLE_HEIGHT;
  const colour = lf.state ? STATE_COLOURS[lf.state] : undefined;
  const collapsed = node.flags?.collapsed;

  if (colour && !collapsed) {
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = lf.state === 'running' ? 3 : 2;
    ctx.beginPath();
    ctx.roundRect(-3, -titleH - 3, w + 6, h + titleH + 6, 10);
    ctx.stroke();
    ctx.restore();
  }

  const badge = badgeText(lf);
  if (badge && !collapsed) {
    ctx.save();
    ctx.font = '11px system-ui, sans-serif';
    const tw = ctx.measureText(badge).width + 12;
    ctx.fillStyle = colour ?? '#444';
    ctx.beginPath();
    ctx.roundRect(w - tw - 6, -titleH + 7, tw, titleH - 14, 7);
    ctx.fill();
    ctx.fillStyle = '#0e1014';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(badge, w - tw / 2 - 6, -titleH / 2 + 0.5);
    ctx.restore();
  }

  if (lf.state === 'running' && lf.progress) {
    // A thin bar along the bottom of the title: visible even when the node is collapsed.
    const frac = Math.min(1, Math.max(0, lf.progress.value / Math.max(1, lf.progress.max)));
    const width = collapsed ? node._collapsed_width ?? w : w;
    ctx.save();
    ctx.fillStyle = 'rgba(255,255,255,0.10)';
    ctx.fillRect(0, -4, width, 4);
    ctx.fillStyle = STATE_COLOURS.running;
    ctx.fillRect(0, -4, width * frac, 4);
    ctx.restore();
  }

  const messages = [];
  for (const p of lf.problems ?? []) {
    const slot = p.input !== undefined ? findInput(node, p.input) : -1;
    if (slot >= 0 && !collapsed) {
      const [x, y] = node.getConnectionPos(true, slot);
      ctx.save();
      ctx.strokeStyle = PROBLEM;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x - node.pos[0], y - node.pos[1], 7, 0, Math.PI * 2);
      ctx.stroke();
      ctx.restore();
    }
    const widget = p.param !== undefined ? node.widgets?.find((x) => x.name === p.param) : undefined;
    if (widget && !collapsed) {
      const wy = widget.last_y ?? widget.y ?? 0;
      ctx.save();
      ctx.strokeStyle = PROBLEM;
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.roundRect(10, wy - 1, w - 20, LiteGraph.NODE_WIDGET_HEIGHT + 2, 6);
      ctx.stroke();
      ctx.restore();
    }
    const where = p.input !== undefined ? `${p.input}: ` : p.param !== undefined ? `${p.param}: ` : '';
    messages.push(`${where}${p.message}`);
  }
  if (lf.state === 'error' && lf.message) messages.unshift(lf.message);
  if (messages.length > 0) {
    ctx.save();
    ctx.font = '12px system-ui, sans-serif';
    ctx.fillStyle = PROBLEM;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    const width = Math.max(w, 260);
    let y = (collapsed ? 0 : h) + 8;
    for (const m of messages.slice(0, 4)) {
      for (const line of wrap(ctx, m, width).slice(0, 3)) {
        ctx.fillText(line, 0, y);
        y += 15;
      }
    }
    if (messages.length > 4) ctx.fillText(`… ${messages.length - 4} more (see Problems)`, 0, y);
    ctx.restore();
  }
}

/** A problem names an input by port name; list inputs show as `name.0`, `name.1`, … */
function findInput(node, name) {
  const exact = node.findInputSlot(name);
  if (exact >= 0) return exact;
  return node.inputs?.findIndex((i) => i.name.startsWith(`${name}.`)) ?? -1;
}
