/** A bad argument or an impossible request to a linear-algebra routine; the message names which. */
import { LoraflowError } from '../errors.ts';
export class LinalgError extends LoraflowError {
  constructor(message: string) {
    super('failure', 'LINALG', message);
    this.name = 'LinalgError';
  }
}
