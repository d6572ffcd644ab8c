/**
 * Any spelling of a UNet module → its table entry: LDM/sgm names (kohya SDXL, ComfyUI) and
 * diffusers names (kohya SD1/SD2, PEFT, LyCORIS standalone, kohya-style SDXL files written by
 * diffusers), dotted or with `.` → `_`. Exact lookups in one map per family, so an underscore
 * name is never split by guessing where its dots were.
 */
import { sdUnetModules, type SdArchitecture, type UnetModule } from './unet.ts';

const spellings = (path: string) => [path, path.replaceAll('.', '_')];

const byName = new Map<SdArchitecture, Map<string, UnetModule>>();
const byLdm = new Map<SdArchitecture, Map<string, UnetModule>>();

function tables(arch: SdArchitecture): { names: Map<string, UnetModule>; ldm: Map<string, UnetModule> } {
  let names = byName.get(arch);
  let ldm = byLdm.get(arch);
  if (!names || !ldm) {
    names = new Map();
    ldm = new Map();
    for (const m of sdUnetModules(arch)) {
      ldm.set(m.ldm, m);
      for (const s of [...spellings(m.ldm), ...spellings(m.diffusers)]) names.set(s, m);
    }
    byName.set(arch, names);
    byLdm.set(arch, ldm);
  }
  return { names, ldm };
}

/** The module a name (prefix already removed) spells in family `arch`, in either naming and spelling. */
export function findUnetModule(arch: SdArchitecture, name: string): UnetModule | undefined {
  return tables(arch).names.get(name);
}

/** The module of a canonical (LDM) path. */
export function unetModuleByLdm(arch: SdArchitecture, ldmPath: string): UnetModule | undefined {
  return tables(arch).ldm.get(ldmPath);
}

/** Which naming a name uses (a diffusers name never starts like an LDM one). */
export function unetNaming(name: string): 'ldm' | 'diffusers' {
  return /^(?:down_blocks|mid_block|up_blocks|conv_in|conv_out|conv_norm_out|time_embedding|add_embedding)[._]/.test(name) || /^(?:conv_in|conv_out|conv_norm_out)$/.test(name) ? 'diffusers' : 'ldm';
}
