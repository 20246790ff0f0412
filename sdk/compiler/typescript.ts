/**
 * The TypeScript side of compiling: type-check the policy program with ts-morph (file:line:col
 * diagnostics), and check mask field paths against the `kubernetes-types` declarations.
 */
import path from "node:path";
import { Project, type SourceFile, type Type, ts } from "ts-morph";
import type { GatewayConfig } from "../schema/config.ts";
import { resourceInfo } from "../kube/resources.ts";
import type { Problems } from "./problems.ts";

export interface TypeCheckResult {
  project: Project;
}

/**
 * Compiler options for policy programs. Module resolution "Bundler" resolves the `custos`
 * self-reference through package.json "exports" like Node does, and `types: []` keeps
 * @types/node out of the program (policies are data; loading it doubles the check time).
 */
const POLICY_COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2023,
  lib: ["lib.es2023.d.ts"],
  module: ts.ModuleKind.Preserve,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  strict: true,
  exactOptionalPropertyTypes: true,
  noUncheckedIndexedAccess: true,
  allowImportingTsExtensions: true,
  verbatimModuleSyntax: true,
  resolveJsonModule: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
};

let cached: Project | undefined;

/**
 * One ts-morph project per process: parsed lib, sdk and kubernetes-types files are reused
 * across compiles (tests, `policy test` runs); the policy's own files are re-added each time.
 */
function sharedProject(): Project {
  cached ??= new Project({ compilerOptions: POLICY_COMPILER_OPTIONS });
  return cached;
}

/**
 * Type-check the policy and the project files it imports (not the sdk itself, nor
 * node_modules: those are checked by the project's own `tsc`); diagnostics go to `problems`.
 */
export function typeCheck(
  entry: string,
  sdkDir: string,
  problems: Problems,
  rel: (file: string) => string,
): TypeCheckResult {
  const project = sharedProject();
  // forget the previous policy's own files; re-read everything else that changed on disk
  for (const sf of project.getSourceFiles()) {
    const file = sf.getFilePath();
    if (file.includes("/node_modules/")) continue;
    if (!isSdkSource(path.resolve(file), sdkDir)) project.removeSourceFile(sf);
    else sf.refreshFromFileSystemSync();
  }
  project.addSourceFileAtPath(entry);
  project.resolveSourceFileDependencies();
  const program = project.getProgram().compilerObject;
  const own = program
    .getSourceFiles()
    .filter(
      (sf) =>
        !sf.isDeclarationFile &&
        !sf.fileName.includes("/node_modules/") &&
        !isSdkSource(path.resolve(sf.fileName), sdkDir),
    );
  const diagnostics = own.flatMap((sf) => [
    ...program.getSyntacticDiagnostics(sf),
    ...program.getSemanticDiagnostics(sf),
  ]);
  for (const d of diagnostics) {
    if (d.category !== ts.DiagnosticCategory.Error) continue;
    const sf = d.file;
    const lc = sf === undefined ? undefined : sf.getLineAndCharacterOfPosition(d.start ?? 0);
    let text = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (d.code === 2307 && text.includes("'custos'")) {
      text += ` — a policy imports "custos" from inside a project that has it installed (npm i custos) or from inside the custos repository itself (package self-reference)`;
    }
    problems.add(
      d.code < 2000 ? "SYNTAX_ERROR" : "TYPE_ERROR",
      "",
      `TS${d.code}: ${text}`,
      sf === undefined || lc === undefined
        ? undefined
        : { file: rel(sf.fileName), line: lc.line + 1, column: lc.character + 1 },
    );
  }
  return { project };
}

/** The sdk's own sources (checked by the project's tsc), but not test fixtures kept under sdk/. */
function isSdkSource(file: string, sdkDir: string): boolean {
  return file.startsWith(sdkDir) && !file.includes("/fixtures/");
}

/**
 * Subresources the gateway relays as text streams (pods/log line by line, exec/attach/portforward
 * channels): only detectors apply there (gateway/masking textStream), never field masks.
 */
const STREAM_SUBRESOURCES = new Set(["log", "exec", "attach", "portforward"]);

/**
 * The kind of object a subresource's JSON response is, which the gateway's field masks walk
 * (gateway/masking/compile.ts selects a mask on "pods/status" for it); undefined when the
 * response is not a known object (proxy: whatever the proxied server sends; a glob).
 */
function subresourceKind(parentKind: string, sub: string): string | undefined {
  switch (sub) {
    case "status":
    case "ephemeralcontainers":
    case "resize":
    case "finalize":
      return parentKind;
    case "scale":
      return "Scale";
    case "token":
      return "TokenRequest";
    default:
      return undefined;
  }
}

/** Warn about mask fields whose path cannot exist on the objects of the mask's resources. */
export function checkMaskPaths(
  config: GatewayConfig,
  project: Project,
  sdkDir: string,
  problems: Problems,
): void {
  // sdk/kube/resources.ts is in every policy program (the sdk imports it); its KindTypes
  // interface maps each kind to its kubernetes-types declaration, so no new file (and no
  // program rebuild) is needed to reach the types
  const at = project.getSourceFile(path.join(sdkDir, "kube", "resources.ts"));
  const kinds = at?.getInterface("KindTypes");
  if (at === undefined || kinds === undefined) return;
  const resolve = (kind: string): Type | undefined => kinds.getProperty(kind)?.getType();
  config.masks.forEach((m, i) => {
    if (m.fields.length === 0 || m.match.resources === undefined) return;
    for (const res of m.match.resources) {
      if (res === "*" || res.startsWith("*/")) continue;
      const [name, sub] = res.split("/") as [string, string | undefined];
      const info = resourceInfo(name);
      if (info === undefined) continue;
      if (sub !== undefined && STREAM_SUBRESOURCES.has(sub)) {
        problems.add(
          "MASK_PATH_IMPOSSIBLE",
          `masks[${i}].fields`,
          `mask "${m.id}" lists field rules for ${res}, which is a stream of text, not an object with fields; use detectors for ${res}`,
          m.source,
        );
        continue;
      }
      // a subresource whose response is an object: its fields are masked like the parent's
      const kind = sub === undefined ? info.kind : subresourceKind(info.kind, sub);
      const root = kind === undefined ? undefined : resolve(kind);
      if (root === undefined) continue;
      m.fields.forEach((f, j) => {
        if (!pathExists(root, f.segments, at)) {
          problems.add(
            "MASK_PATH_IMPOSSIBLE",
            `masks[${i}].fields[${j}]`,
            `mask "${m.id}": ${kind} has no field ${f.path}; check the spelling against the ${kind} API (kubernetes-types)`,
            m.source,
          );
        }
      });
    }
  });
}

function pathExists(root: Type, segments: readonly string[], at: SourceFile): boolean {
  let current: Type[] = [root];
  for (const seg of segments) {
    const next: Type[] = [];
    for (const t0 of current) {
      for (const t of expand(t0)) {
        if (t.isAny() || t.isUnknown()) return true;
        if (t.isArray()) {
          if (seg === "*" || /^\d+$/.test(seg)) next.push(t.getArrayElementTypeOrThrow());
          continue;
        }
        if (!t.isObject()) continue;
        const index = t.getStringIndexType();
        // an interface with no members is free-form JSON in kubernetes-types (RawExtension: a
        // ControllerRevision's pod template; FieldsV1; apiextensions JSON): any path may exist
        if (index === undefined && t.getProperties().length === 0 && t.getCallSignatures().length === 0)
          return true;
        if (seg === "*") {
          if (index !== undefined) next.push(index);
          for (const p of t.getProperties()) next.push(p.getTypeAtLocation(at));
          continue;
        }
        const prop = t.getProperty(seg);
        if (prop !== undefined) next.push(prop.getTypeAtLocation(at));
        else if (index !== undefined) next.push(index);
      }
    }
    if (next.length === 0) return false;
    current = next;
  }
  return true;
}

function expand(t: Type): Type[] {
  const nn = t.getNonNullableType();
  return nn.isUnion() ? nn.getUnionTypes() : [nn];
}
