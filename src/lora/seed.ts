/** A 32-bit seed from a name (FNV-1a), so per-tensor randomness is reproducible run to run. */
export function seedFromName(name: string, salt = 0): number {
  let h = 0x811c9dc5 ^ Math.imul(salt | 0, 0x9e3779b9);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
