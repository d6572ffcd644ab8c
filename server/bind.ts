import { isLoopbackHost } from './origin.ts';

/** Where `loraflow serve` listens unless told otherwise: this machine only. */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8188;

export class PublicBindError extends Error {
  constructor(host: string) {
    super(`refusing to listen on ${host}: it is not a loopback address, and this server can read and write files under its roots. Pass --allow-public if you really mean to expose it.`);
    this.name = 'PublicBindError';
  }
}

/** Throws unless `host` is loopback or the user said --allow-public. */
export function assertBindable(host: string, allowPublic: boolean): void {
  if (!allowPublic && !isLoopbackHost(host)) throw new PublicBindError(host);
}
