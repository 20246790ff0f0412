#!/usr/bin/env node
// The `custos` command. The TypeScript sources run directly through tsx's loader.
import { register } from "tsx/esm/api";

register();
const { main } = await import("./custos.ts");
process.exitCode = await main(process.argv.slice(2));
