/** Facts about files a test wrote or must leave alone. */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

export const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

/** Hex SHA-256 of a whole file (to show an input was not modified). */
export const sha256 = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');
