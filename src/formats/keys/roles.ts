/**
 * What one tensor is within its module, from the key's ending: every spelling the trainers use
 * (kohya/LyCORIS `lora_down`/`lora_up`/`lora_mid`, PEFT `lora_A`/`lora_B`, x-flux `down`/`up`, LoHa
 * `hada_*`, LoKr `lokr_*`, DoRA `dora_scale`/`lora_magnitude_vector`, `alpha`). The rest of the key
 * names the module.
 */

export type Role =
  | 'down' | 'up' | 'mid' | 'down_bias' | 'up_bias' | 'alpha'
  | 'dora' | 'magnitude'
  | 'hada_w1_a' | 'hada_w1_b' | 'hada_w2_a' | 'hada_w2_b' | 'hada_t1' | 'hada_t2'
  | 'lokr_w1' | 'lokr_w1_a' | 'lokr_w1_b' | 'lokr_w2' | 'lokr_w2_a' | 'lokr_w2_b' | 'lokr_t2'
  | 'diff' | 'diff_b' | 'set' | 'reshape';

/** PEFT inserts the adapter name between `lora_A` and `.weight` in raw saves (`.default`, `.default_0`). */
const ADAPTER = String.raw`(?:\.default(?:_\d+)?)?`;

/** Ordered: the first pattern that matches wins; `module` is everything before the match. */
const ROLE_PATTERNS: readonly [RegExp, Role | ((m: RegExpExecArray) => Role)][] = [
  [/\.lora_down\.weight$/, 'down'],
  [/\.lora_up\.weight$/, 'up'],
  [/\.lora_mid\.weight$/, 'mid'],
  [new RegExp(String.raw`\.lora_([AB])${ADAPTER}\.weight$`), (m) => (m[1] === 'A' ? 'down' : 'up')],
  [new RegExp(String.raw`\.lora_([AB])${ADAPTER}\.bias$`), (m) => (m[1] === 'A' ? 'down_bias' : 'up_bias')],
  [new RegExp(String.raw`\.lora_magnitude_vector${ADAPTER}(?:\.weight)?$`), 'magnitude'],
  [/\.dora_scale$/, 'dora'],
  [/\.alpha$/, 'alpha'],
  // x-flux processors (`qkv_lora1.down.weight`)
  [/\.down\.weight$/, 'down'],
  [/\.up\.weight$/, 'up'],
  [/\.(hada_w[12]_[ab]|hada_t[12])$/, (m) => m[1] as Role],
  [/\.(lokr_w[12](?:_[ab])?|lokr_t2)$/, (m) => m[1] as Role],
  [/\.diff$/, 'diff'],
  [/\.diff_b$/, 'diff_b'],
  [/\.set_weight$/, 'set'],
  [/\.reshape_weight$/, 'reshape'],
];

/** BFL control LoRAs store replacement RMSNorm scales under the base model's own key. */
const BARE_NORM_SCALE = /\.(?:query_norm|key_norm)\.scale$/;

export interface KeyRole {
  module: string;
  role: Role;
}

export function parseRole(key: string): KeyRole | undefined {
  for (const [re, role] of ROLE_PATTERNS) {
    const m = re.exec(key);
    if (m) return { module: key.slice(0, m.index), role: typeof role === 'function' ? role(m) : role };
  }
  if (BARE_NORM_SCALE.test(key)) return { module: key.slice(0, -'.scale'.length), role: 'set' };
  return undefined;
}

/** Roles that make up each adapter kind (the keys of one module are grouped by these). */
export const LORA_ROLES: readonly Role[] = ['down', 'up', 'mid', 'alpha', 'dora', 'magnitude', 'down_bias', 'up_bias', 'reshape'];
export const LOHA_ROLES: readonly Role[] = ['hada_w1_a', 'hada_w1_b', 'hada_w2_a', 'hada_w2_b', 'hada_t1', 'hada_t2'];
export const LOKR_ROLES: readonly Role[] = ['lokr_w1', 'lokr_w1_a', 'lokr_w1_b', 'lokr_w2', 'lokr_w2_a', 'lokr_w2_b', 'lokr_t2'];

/**
 * Key endings only adapters have: LoRA factors in every trainer's spelling, DoRA magnitudes,
 * LoHa and LoKr factors. (x-flux's bare `.down.weight` is left out: model checkpoints use such
 * names for their own weights.)
 */
const ADAPTER_ONLY = new RegExp(
  String.raw`\.(?:lora_(?:down|up|mid)\.weight|lora_[AB]${ADAPTER}\.weight|lora_magnitude_vector${ADAPTER}(?:\.weight)?|dora_scale|hada_w[12]_[ab]|lokr_w[12](?:_[ab])?)$`,
);

/** The keys of a file that only an adapter file holds (a LoRA passed where a checkpoint belongs has them). */
export function adapterOnlyKeys(names: Iterable<string>): string[] {
  const out: string[] = [];
  for (const n of names) if (ADAPTER_ONLY.test(n)) out.push(n);
  return out;
}
