/**
 * The branch's tree kept in memory between commits, so a commit writes only the new blob and
 * the trees on its path (records/, YYYY/, MM/, DD/, HH/, root) and never re-reads the repo.
 * Subtrees load lazily from the object store the first time a path goes through them.
 */
import type { ObjectStore } from "./objects.ts";
import { parseTree, serializeTree, type TreeEntry } from "./objects.ts";

const DIR = "40000";
const FILE = "100644";

type Child = { kind: "file"; oid: string } | { kind: "dir"; oid: string; node?: TreeNode };

export class TreeNode {
  children = new Map<string, Child>();
  /** the oid of this tree as last written; null when changed since */
  oid: string | null = null;

  static empty(): TreeNode {
    return new TreeNode();
  }

  static fromEntries(entries: TreeEntry[], oid: string): TreeNode {
    const n = new TreeNode();
    for (const e of entries) {
      n.children.set(e.name, e.mode === DIR ? { kind: "dir", oid: e.oid } : { kind: "file", oid: e.oid });
    }
    n.oid = oid;
    return n;
  }
}

export class MutableTree {
  constructor(
    private readonly store: ObjectStore,
    private root: TreeNode,
  ) {}

  static async load(store: ObjectStore, treeOid: string | null): Promise<MutableTree> {
    if (treeOid === null) return new MutableTree(store, TreeNode.empty());
    const { content } = await store.read(treeOid);
    return new MutableTree(store, TreeNode.fromEntries(parseTree(content), treeOid));
  }

  private async dir(child: Extract<Child, { kind: "dir" }>): Promise<TreeNode> {
    if (!child.node) {
      const { content } = await this.store.read(child.oid);
      child.node = TreeNode.fromEntries(parseTree(content), child.oid);
    }
    return child.node;
  }

  /** walk to the directory of `parts`, creating missing ones when `create` */
  private async walk(parts: string[], create: boolean): Promise<TreeNode[] | null> {
    const chain: TreeNode[] = [this.root];
    let node = this.root;
    for (const name of parts) {
      let child = node.children.get(name);
      if (!child) {
        if (!create) return null;
        child = { kind: "dir", oid: "", node: TreeNode.empty() };
        node.children.set(name, child);
      }
      if (child.kind !== "dir")
        throw new Error(`evidence tree: "${name}" is a file where a directory was expected`);
      node = await this.dir(child);
      chain.push(node);
    }
    return chain;
  }

  /** the blob oid at `path`, or null */
  async get(path: string): Promise<string | null> {
    const parts = path.split("/");
    const name = parts.pop()!;
    const chain = await this.walk(parts, false);
    const child = chain?.[chain.length - 1]?.children.get(name);
    return child?.kind === "file" ? child.oid : null;
  }

  /** names in directory `path` ("" = root), or [] */
  async list(path: string): Promise<string[]> {
    const chain = await this.walk(path === "" ? [] : path.split("/"), false);
    const node = chain?.[chain.length - 1];
    return node ? [...node.children.keys()] : [];
  }

  /** add a NEW file; throws if the path exists (append-only) */
  async add(path: string, blobOid: string): Promise<void> {
    const parts = path.split("/");
    const name = parts.pop()!;
    const chain = (await this.walk(parts, true))!;
    const dir = chain[chain.length - 1]!;
    if (dir.children.has(name))
      throw new Error(`evidence tree: "${path}" already exists; evidence files are never rewritten`);
    dir.children.set(name, { kind: "file", oid: blobOid });
    for (const n of chain) n.oid = null;
  }

  /** write every changed tree, bottom-up; returns the root oid */
  async write(): Promise<string> {
    return this.writeNode(this.root);
  }

  private async writeNode(node: TreeNode): Promise<string> {
    if (node.oid !== null) return node.oid;
    const entries: TreeEntry[] = [];
    for (const [name, child] of node.children) {
      if (child.kind === "file") entries.push({ mode: FILE, name, oid: child.oid });
      else {
        if (child.node && child.node.oid === null) child.oid = await this.writeNode(child.node);
        entries.push({ mode: DIR, name, oid: child.oid });
      }
    }
    node.oid = await this.store.write("tree", serializeTree(entries));
    return node.oid;
  }

  /** drop loaded subtrees that are unchanged, keeping memory bounded over long runs */
  prune(keep: (path: string) => boolean): void {
    const visit = (node: TreeNode, prefix: string): void => {
      for (const [name, child] of node.children) {
        if (child.kind !== "dir" || !child.node) continue;
        const p = prefix === "" ? name : `${prefix}/${name}`;
        if (child.node.oid !== null && !keep(p)) delete child.node;
        else visit(child.node, p);
      }
    };
    visit(this.root, "");
  }
}
