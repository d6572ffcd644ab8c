/**
 * The paths step, for the nodes that will run: each path param resolves inside its root, inputs
 * exist, and no file is written twice or over a file the recipe reads (compared by what the path
 * names on disk, so no alias of an input can be written over).
 */
import { statSync } from 'node:fs';
import { fileIdentity, outputPathProblem, type FileIdentity } from '../../file-identity.ts';
import type { PathParamInfo } from '../node.ts';
import type { PathResolver } from '../roots.ts';
import type { PlannedPath } from '../validate.ts';
import type { Entry, Validation } from './context.ts';

type Use = { id: string; resolved: string };

interface PathCheck {
  va: Validation;
  entry: Entry;
  resolvePath: PathResolver;
  checkFiles: boolean;
  writers: Map<FileIdentity, Use>;
  readers: Map<FileIdentity, Use>;
}

function fileProblem(resolved: string): string | undefined {
  let st;
  try {
    st = statSync(resolved);
  } catch {
    return `${resolved}: no such file`;
  }
  return st.isFile() ? undefined : `${resolved}: not a file`;
}

/** The planned path of one path param, or undefined (no value, or a problem reported). */
function checkPath(c: PathCheck, pp: PathParamInfo): PlannedPath | undefined {
  const { va, entry } = c;
  const at = { nodeId: entry.id, nodeType: entry.type, param: pp.name };
  const value = entry.givenParams![pp.name];
  // A non-string path is already reported as a bad param.
  if (typeof value !== 'string' || value === '') return undefined;
  let resolved: string;
  let identity: FileIdentity;
  try {
    resolved = c.resolvePath(value, pp.kind);
  } catch (e) {
    va.problems.push({ ...at, code: 'bad_path', message: (e as Error).message });
    return undefined;
  }
  const planned = { ...pp, value, resolved };
  try {
    identity = fileIdentity(resolved, pp.mode === 'read' ? 'input' : 'output');
  } catch (e) {
    va.problems.push({ ...at, code: 'bad_path', message: (e as Error).message });
    return planned;
  }
  if (pp.mode === 'read') {
    c.readers.set(identity, { id: entry.id, resolved });
    const missing = c.checkFiles ? fileProblem(resolved) : undefined;
    if (missing) va.problems.push({ ...at, code: 'file_not_found', message: missing });
    return planned;
  }
  const notAFile = outputPathProblem(value, resolved);
  if (notAFile) va.problems.push({ ...at, code: 'bad_path', message: notAFile });
  const other = c.writers.get(identity);
  if (other) va.problems.push({ ...at, code: 'output_conflict', message: `${resolved} is also written by node "${other.id}"${other.resolved === resolved ? '' : ` (as ${other.resolved})`}` });
  c.writers.set(identity, { id: entry.id, resolved });
  return planned;
}

/** The planned paths per node id of `needed`. */
export function checkPaths(va: Validation, needed: ReadonlySet<string>, resolvePath: PathResolver, checkFiles: boolean): Map<string, PlannedPath[]> {
  const planned = new Map<string, PlannedPath[]>();
  const writers = new Map<FileIdentity, Use>();
  const readers = new Map<FileIdentity, Use>();
  for (const id of [...needed].sort()) {
    const entry = va.entries.get(id);
    if (!entry?.def || !entry.givenParams) continue;
    const c: PathCheck = { va, entry, resolvePath, checkFiles, writers, readers };
    planned.set(id, entry.def.pathParams.flatMap((pp) => checkPath(c, pp) ?? []));
  }
  for (const [identity, writer] of writers) {
    const reader = readers.get(identity);
    if (!reader) continue;
    const e = va.entries.get(writer.id)!;
    const alias = reader.resolved === writer.resolved ? '' : ` (the same file as ${writer.resolved})`;
    va.problems.push({ code: 'output_conflict', nodeId: writer.id, nodeType: e.type, message: `would overwrite ${reader.resolved}${alias}, which node "${reader.id}" reads (inputs are never modified)` });
  }
  return planned;
}
