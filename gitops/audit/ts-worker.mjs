// Worker bootstrap: TypeScript workers run through tsx's loader, as the `custos` command does
// (`--import tsx` in a worker's execArgv does not reach the worker's own module loader on Node 20).
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
