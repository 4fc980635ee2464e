// In the single binary, piscina's worker (started from memory, src/sea/embedded-workers.ts) loads
// the password task the way it always does, with require(filename) (piscina/dist/worker.js
// getHandler); there is no such file, so that one name is answered with the bundled task.
// packaging/ runs this, then piscina's worker, as the pool's worker script.
import Module from 'node:module';
import runPasswordTask from '../auth/password-worker.js';
import { embeddedPath } from './embedded-root.js';

type Load = (request: string, parent: unknown, isMain: boolean) => unknown;

export function answerPasswordTask(): void {
  const taskFile = embeddedPath('src/auth/password-worker.js');
  const modules = Module as unknown as { _load: Load };
  const load = modules._load;
  modules._load = function (this: unknown, request, parent, isMain) {
    // The task as a CommonJS module whose exports are its function (what piscina takes).
    return request === taskFile ? runPasswordTask : load.call(this, request, parent, isMain);
  };
}
