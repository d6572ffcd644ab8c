/**
 * HunyuanVideo base checkpoints come in two namings: ComfyUI's (the canonical names; a file ComfyUI
 * saved prefixes them `model.model.` and names the RMSNorm scales `.weight`) and Tencent's (the
 * release `mp_rank_00_model_states.pt` converted to safetensors, the files musubi-tuner's `--dit`
 * and diffusion-pipe's `transformer_path` load, Kijai's repacks). A LoRA is applied into either, and
 * an extraction from a Tencent-named pair names its modules canonically.
 */
import type { Patch } from '../../adapter/model.ts';
import type { CheckpointLocator, Family } from '../family.ts';
import { fillIndex } from '../table/template.ts';
import { HUNYUAN_VIDEO_TABLE } from './modules.ts';
import { tencentPath } from './naming.ts';

/** Where single files put the transformer's keys: bare, ComfyUI full checkpoints, ComfyUI's own HunyuanVideo saves. */
const PREFIXES = ['', 'model.diffusion_model.', 'diffusion_model.', 'model.model.'];

const splitTarget = (target: string) => {
  const i = target.lastIndexOf('.');
  return { path: target.slice(0, i), param: target.slice(i + 1) };
};

export const HUNYUAN_VIDEO_LOCATOR: CheckpointLocator = {
  locate(file, patch) {
    const { path, param } = splitTarget(patch.target);
    const norm = HUNYUAN_VIDEO_TABLE.target(patch.target)?.module.kind === 'norm';
    // an RMSNorm scale is `.scale` in ComfyUI's older names, `.weight` in Tencent's and ComfyUI's saves
    const params = norm && param === 'scale' ? ['scale', 'weight'] : [param];
    for (const name of new Set([path, tencentPath(path)]))
      for (const p of params)
        for (const prefix of PREFIXES) {
          const key = `${prefix}${name}.${p}`;
          if (file.has(key)) return { key, patch };
        }
    return undefined;
  },
};

/** An extracted patch on a checkpoint name (either naming, any prefix) → the canonical target. */
function canonicalTarget(name: string): string {
  const { path, param } = splitTarget(name.startsWith('model.model.') ? name.slice('model.model.'.length) : name);
  const hit = HUNYUAN_VIDEO_TABLE.match(path, 'dotted');
  if (!hit || hit.diffusersName || hit.part) return `${path}.${param}`;
  const canonical = fillIndex(hit.module.original, hit.block);
  return `${canonical}.${hit.module.kind === 'norm' && param === 'weight' ? 'scale' : param}`;
}

export const hunyuanVideoExtraction: NonNullable<Family['checkpoint']['canonicalExtraction']> = (patches) => ({
  patches: patches.map((p): Patch => (p.component === 'transformer' ? { ...p, target: canonicalTarget(p.target) } : p)),
  skipped: [],
});
