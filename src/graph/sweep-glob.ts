import { readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';

/**
 * The small glob a sweep needs over a model root (`loras/*.safetensors`, `**\/*.safetensors`):
 * `*` and `?` within one path segment, `[abc]` classes, `**` for any depth. Names starting with a
 * dot are matched only by a pattern segment that starts with a dot, so staging files
 * (`.x.safetensors.PID.HEX.tmp`) and hidden folders never become sweep points. (Node 20 has no
 * fs.glob; this is enough for a sweep and has no dependency.)
 */

export function isGlob(value: string): boolean {
  return /[*?[]/.test(value);
}

function segmentRegex(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = segment.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

async function entries(dir: string): Promise<{ name: string; dir: boolean }[]> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    return list.map((e) => ({ name: e.name, dir: e.isDirectory() }));
  } catch {
    return [];
  }
}

/**
 * Files matching `pattern` (relative to `root`, or absolute), sorted; relative patterns give paths
 * relative to `root` (with "/"), absolute ones absolute paths.
 */
export async function expandGlob(pattern: string, root: string): Promise<string[]> {
  const absolute = isAbsolute(pattern);
  const base = absolute ? sep : root;
  const segments = pattern.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  if (segments.at(-1) === '**') segments.push('*');
  const found = new Set<string>();
  const walk = async (dir: string, i: number): Promise<void> => {
    if (i === segments.length) return;
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '**') {
      await walk(dir, i + 1);
      for (const e of await entries(dir)) if (e.dir && !e.name.startsWith('.')) await walk(join(dir, e.name), i);
      return;
    }
    if (!isGlob(seg)) {
      const path = join(dir, seg);
      if (last) {
        const parent = await entries(dir);
        if (parent.some((e) => e.name === seg && !e.dir)) found.add(path);
      } else await walk(path, i + 1);
      return;
    }
    const re = segmentRegex(seg);
    for (const e of await entries(dir)) {
      if (e.name.startsWith('.') && !seg.startsWith('.')) continue;
      if (!re.test(e.name)) continue;
      if (last && !e.dir) found.add(join(dir, e.name));
      else if (!last && e.dir) await walk(join(dir, e.name), i + 1);
    }
  };
  await walk(base, 0);
  const out = [...found].map((p) => (absolute ? p : relative(root, p).split(sep).join('/')));
  return out.sort();
}
