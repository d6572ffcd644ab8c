/**
 * Groups a file's keys into modules (a module name plus the tensors it holds, by role) and resolves
 * each module name. Pure: works on names and shapes, so detection and reading share it.
 */
import { parseRole, type Role } from './roles.ts';
import type { Family } from '../family.ts';
import { isResolved, resolveModule, type Layout, type ResolvedModule, type UnresolvedModule } from './resolve.ts';
import { modernModuleName } from './legacy-names.ts';

export interface KeyInfo {
  name: string;
  shape: readonly number[];
}

export interface ModuleKeys {
  /** The module name as the file spells it (the key without its role suffix). */
  name: string;
  resolved: ResolvedModule | UnresolvedModule;
  keys: Map<Role, KeyInfo>;
}

export interface KeyGroups {
  modules: ModuleKeys[];
  /** Keys whose ending is no known role, or that repeat a role already seen in their module. */
  unparsed: string[];
}

/**
 * ComfyUI names non-`.weight` parameters by their full key, so an RMSNorm scale patch can be
 * `….query_norm.scale.set_weight` or `….query_norm.scale.diff`: the module is the norm.
 */
function resolveWithParam(name: string, family: Family | undefined): ResolvedModule | UnresolvedModule {
  const direct = resolveModule(name, family);
  if (isResolved(direct) || !/[._]scale$/.test(name)) return direct;
  const viaNorm = resolveModule(name.slice(0, -'.scale'.length), family);
  return isResolved(viaNorm) && viaNorm.kind === 'norm' ? viaNorm : direct;
}

/** Groups keys into modules, resolving denoiser names with `family`'s names (none: every denoiser name stays unresolved). */
export function groupKeys(tensors: readonly KeyInfo[], family?: Family): KeyGroups {
  const byName = new Map<string, ModuleKeys>();
  const unparsed: string[] = [];
  for (const t of tensors) {
    const parsed = parseRole(t.name);
    if (!parsed) {
      unparsed.push(t.name);
      continue;
    }
    let mod = byName.get(parsed.module);
    if (!mod) {
      mod = { name: parsed.module, resolved: resolveWithParam(modernModuleName(parsed.module), family), keys: new Map() };
      byName.set(parsed.module, mod);
    }
    if (mod.keys.has(parsed.role)) unparsed.push(t.name);
    else mod.keys.set(parsed.role, t);
  }
  return { modules: [...byName.values()], unparsed };
}

/** Keys per layout (a file mixing layouts is read key by key; this is what detection reports). */
export function layoutCounts(groups: KeyGroups): Partial<Record<Layout, number>> {
  const out: Partial<Record<Layout, number>> = {};
  for (const m of groups.modules) out[m.resolved.layout] = (out[m.resolved.layout] ?? 0) + m.keys.size;
  return out;
}
