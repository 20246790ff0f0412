/**
 * A GitHub REST API stand-in on a loopback HTTP server, for the approvals tests. It speaks
 * GitHub's REST shapes (typed with @octokit/openapi-types; the repository object is the
 * recorded real exchange from @octokit/fixtures' get-repository scenario) and is driven by the
 * real @octokit/rest client. What it models, because the approval checks depend on it:
 * - users with immutable numeric ids and logins that can be renamed; token -> user auth;
 * - branches whose head sha moves when a commit lands (a PR's head follows its branch);
 * - pull requests, requested reviewers, reviews (APPROVED / CHANGES_REQUESTED / COMMENTED,
 *   each pinned to the commit it was made on) and dismissals (state becomes DISMISSED);
 * - issue comments and labels; contents (create a file on a branch, read it at a ref);
 * - webhooks delivered over HTTP with a real X-Hub-Signature-256 (HMAC-SHA256 of the body).
 * Paths are served both at the root (api.github.com style) and under /api/v3 (GitHub
 * Enterprise style), so baseUrl handling is exercised too.
 */
import { createHash, createHmac, createPublicKey, type KeyObject, randomUUID, verify } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import type { components } from "@octokit/openapi-types";

type S = components["schemas"];

export interface StandInUser {
  id: number;
  login: string;
  type: "User" | "Bot" | "Organization";
}

interface Commit {
  sha: string;
  parent: string | null;
  files: Map<string, string>;
  message: string;
}

interface Review {
  id: number;
  userId: number;
  body: string;
  state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" | "DISMISSED";
  commitId: string;
  submittedAt: string;
}

interface Pull {
  number: number;
  title: string;
  body: string;
  state: "open" | "closed";
  headRef: string;
  baseRef: string;
  userId: number;
  requested: number[];
  labels: string[];
  comments: { id: number; userId: number; body: string; createdAt: string }[];
  reviews: Review[];
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
}

interface Repo {
  id: number;
  ownerId: number;
  name: string;
  defaultBranch: string;
  refs: Map<string, string>; // branch -> sha
  commits: Map<string, Commit>;
  pulls: Pull[];
  nextNumber: number;
}

export interface Hook {
  url: string;
  secret: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const require = createRequire(import.meta.url);
const repoFixture = (
  JSON.parse(
    readFileSync(
      require.resolve("@octokit/fixtures/scenarios/api.github.com/get-repository/normalized-fixture.json"),
      "utf8",
    ),
  ) as {
    response: Record<string, unknown>;
  }[]
)[0]!.response;

export class GitHubStandIn {
  private server: Server | undefined;
  baseUrl = "";
  private readonly users = new Map<number, StandInUser>();
  private readonly tokens = new Map<string, number>();
  private readonly repos = new Map<string, Repo>();
  private nextId = 1000;
  private nextReviewId = 80;
  private shaCounter = 0;
  readonly hooks: Hook[] = [];
  private readonly deliveries: Promise<void>[] = [];
  /** every webhook delivery's HTTP status, in order */
  readonly deliveryStatuses: number[] = [];
  private readonly apps = new Map<number, { appId: string; publicKey: KeyObject; botId: number }>();
  /** installation tokens handed out (GitHub App auth) */
  tokenExchanges = 0;
  /** every API request, "METHOD /path" */
  readonly requests: string[] = [];
  clock: () => Date = () => new Date();

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        const status = e instanceof HttpError ? e.status : 500;
        this.send(res, status, {
          message: (e as Error).message,
          documentation_url: "https://docs.github.com/rest",
        });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await this.flushWebhooks();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  /** the REST base URL in GitHub Enterprise form */
  get enterpriseUrl(): string {
    return `${this.baseUrl}/api/v3`;
  }

  // ---- test control (not REST) -------------------------------------------------------------

  addUser(login: string, type: StandInUser["type"] = "User"): StandInUser & { token: string } {
    const u: StandInUser = { id: this.nextId++, login, type };
    this.users.set(u.id, u);
    const token = `ghs_${randomUUID().replace(/-/g, "")}`;
    this.tokens.set(token, u.id);
    return { ...u, token };
  }

  /** Register a GitHub App installed on the stand-in; its installation tokens act as `<slug>[bot]`. */
  addApp(appId: string, publicKeyPem: string, installationId: number, slug: string): StandInUser {
    const bot = this.addUser(`${slug}[bot]`, "Bot");
    this.apps.set(installationId, { appId, publicKey: createPublicKey(publicKeyPem), botId: bot.id });
    return bot;
  }

  /** POST /app/installations/{id}/access_tokens: verify the App's RS256 JWT, mint a token. */
  private installationToken(req: IncomingMessage, installationId: number): S["installation-token"] {
    const app = this.apps.get(installationId);
    if (!app) throw new HttpError(404, "Not Found");
    const jwt = (req.headers.authorization ?? "").match(/^bearer\s+(.+)$/i)?.[1] ?? "";
    const [h, p, sig] = jwt.split(".");
    if (!h || !p || !sig) throw new HttpError(401, "A JSON web token could not be decoded");
    if (!verify("sha256", Buffer.from(`${h}.${p}`), app.publicKey, Buffer.from(sig, "base64url"))) {
      throw new HttpError(401, "A JSON web token could not be decoded");
    }
    const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as {
      iat: number;
      exp: number;
      iss: string;
    };
    const now = Math.floor(this.clock().getTime() / 1000);
    if (claims.iss !== app.appId) throw new HttpError(401, "'Issuer' claim ('iss') must be an Integer");
    if (claims.exp <= now || claims.iat > now + 60 || claims.exp - claims.iat > 660) {
      throw new HttpError(401, "'Expiration time' claim ('exp') is too far in the future");
    }
    const token = `ghs_inst_${randomUUID().replace(/-/g, "")}`;
    this.tokens.set(token, app.botId);
    this.tokenExchanges++;
    return {
      token,
      expires_at: new Date(this.clock().getTime() + 3_600_000).toISOString(),
      permissions: { contents: "write", pull_requests: "write", issues: "write" },
      repository_selection: "selected",
    };
  }

  renameUser(id: number, login: string): void {
    const u = this.users.get(id);
    if (!u) throw new Error(`no user ${id}`);
    u.login = login;
  }

  addRepo(owner: string, name: string): void {
    let org = [...this.users.values()].find((u) => u.login === owner);
    if (!org) org = this.addUser(owner, "Organization");
    const root = this.newCommit(null, new Map([["README.md", "# approvals\n"]]), "initial commit");
    this.repos.set(`${owner}/${name}`, {
      id: this.nextId++,
      ownerId: org.id,
      name,
      defaultBranch: "main",
      refs: new Map([["main", root.sha]]),
      commits: new Map([[root.sha, root]]),
      pulls: [],
      nextNumber: 1,
    });
  }

  /** Push a commit on a branch (moves the head of every PR from that branch; emits `synchronize`). */
  pushCommit(owner: string, name: string, branch: string, path: string, content: string): string {
    const repo = this.repo(owner, name);
    const c = this.commitOn(repo, branch, path, content, `update ${path}`);
    for (const p of repo.pulls) {
      if (p.headRef === branch && p.state === "open")
        this.emit(
          repo,
          "pull_request",
          { action: "synchronize", pull_request: this.pullJson(repo, p) },
          p.userId,
        );
    }
    return c.sha;
  }

  addHook(hook: Hook): void {
    this.hooks.push(hook);
  }

  /** Dismiss a review as a repository admin would (GitHub sets its state to DISMISSED). */
  pull(owner: string, name: string, number: number): Pull {
    const p = this.repo(owner, name).pulls.find((x) => x.number === number);
    if (!p) throw new Error(`no pull ${number}`);
    return p;
  }

  async flushWebhooks(): Promise<void> {
    while (this.deliveries.length > 0) await Promise.allSettled(this.deliveries.splice(0));
  }

  /** The body and headers GitHub would send for an event, signed with `secret` (for forging tests). */
  static sign(secret: string, body: string): string {
    return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
  }

  // ---- REST ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    let path = url.pathname;
    if (path.startsWith("/api/v3/")) path = path.slice("/api/v3".length);
    const method = req.method ?? "GET";
    this.requests.push(`${method} ${path}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const body = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
    const appMatch = path.match(/^\/app\/installations\/(\d+)\/access_tokens$/);
    if (method === "POST" && appMatch)
      return this.send(res, 201, this.installationToken(req, Number(appMatch[1])));
    const me = this.auth(req);
    const q = url.searchParams;
    const userMatch = path.match(/^\/user\/(\d+)$/);
    const usersMatch = path.match(/^\/users\/([^/]+)$/);
    const repoMatch = path.match(/^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/);

    if (method === "GET" && path === "/user") return this.send(res, 200, this.publicUser(me));
    if (method === "GET" && userMatch)
      return this.send(res, 200, this.publicUser(this.userById(Number(userMatch[1]))));
    if (method === "GET" && usersMatch) {
      const login = decodeURIComponent(usersMatch[1]!).toLowerCase();
      const u = [...this.users.values()].find((x) => x.login.toLowerCase() === login);
      if (!u) throw new HttpError(404, "Not Found");
      return this.send(res, 200, this.publicUser(u));
    }
    if (!repoMatch) throw new HttpError(404, "Not Found");
    const [owner, name, rest = ""] = [repoMatch[1]!, repoMatch[2]!, repoMatch[3]];
    const refMatch = rest.match(/^\/git\/ref\/(.+)$/);
    const contentsMatch = rest.match(/^\/contents\/(.+)$/);
    const pullMatch = rest.match(/^\/(pulls|issues)\/(\d+)(\/.*)?$/);
    const repo = this.repo(owner, name);

    if (method === "GET" && rest === "") return this.send(res, 200, this.repoJson(repo));
    if (method === "GET" && refMatch) {
      // octokit percent-encodes the slash in "heads/main"
      const ref = decodeURIComponent(refMatch[1]!);
      const branch = ref.startsWith("heads/") ? ref.slice("heads/".length) : "";
      const sha = repo.refs.get(branch);
      if (!sha) throw new HttpError(404, "Not Found");
      return this.send(res, 200, this.refJson(repo, branch, sha));
    }
    if (method === "POST" && rest === "/git/refs") {
      const ref = String(body.ref ?? "");
      const sha = String(body.sha ?? "");
      if (!ref.startsWith("refs/heads/"))
        throw new HttpError(422, "Reference name must start with refs/heads/");
      const branch = ref.slice("refs/heads/".length);
      if (repo.refs.has(branch)) throw new HttpError(422, "Reference already exists");
      if (!repo.commits.has(sha)) throw new HttpError(422, "Object does not exist");
      repo.refs.set(branch, sha);
      return this.send(res, 201, this.refJson(repo, branch, sha));
    }
    if (contentsMatch) {
      const filePath = decodeURIComponent(contentsMatch[1]!);
      if (method === "PUT") {
        const branch = String(body.branch ?? repo.defaultBranch);
        if (!repo.refs.has(branch)) throw new HttpError(404, `Branch ${branch} not found`);
        const content = Buffer.from(String(body.content ?? ""), "base64").toString("utf8");
        const c = this.commitOn(repo, branch, filePath, content, String(body.message ?? "update"));
        for (const p of repo.pulls) {
          if (p.headRef === branch && p.state === "open")
            this.emit(
              repo,
              "pull_request",
              { action: "synchronize", pull_request: this.pullJson(repo, p) },
              me.id,
            );
        }
        return this.send(res, 201, this.fileCommitJson(repo, filePath, content, c));
      }
      if (method === "GET") {
        const ref = q.get("ref") ?? repo.defaultBranch;
        const commit = repo.commits.get(repo.refs.get(ref) ?? ref);
        const content = commit?.files.get(filePath);
        if (content === undefined) throw new HttpError(404, "Not Found");
        return this.send(res, 200, this.contentJson(repo, filePath, content, ref));
      }
    }
    if (rest === "/pulls" && method === "POST") {
      const head = String(body.head ?? "");
      const base = String(body.base ?? repo.defaultBranch);
      if (!repo.refs.has(head)) throw new HttpError(422, "Validation Failed: head does not exist");
      const now = this.clock().toISOString();
      const p: Pull = {
        number: repo.nextNumber++,
        title: String(body.title ?? ""),
        body: String(body.body ?? ""),
        state: "open",
        headRef: head,
        baseRef: base,
        userId: me.id,
        requested: [],
        labels: [],
        comments: [],
        reviews: [],
        createdAt: now,
        updatedAt: now,
        closedAt: null,
      };
      repo.pulls.push(p);
      this.emit(repo, "pull_request", { action: "opened", pull_request: this.pullJson(repo, p) }, me.id);
      return this.send(res, 201, this.pullJson(repo, p));
    }
    if (rest === "/pulls" && method === "GET") {
      const state = q.get("state") ?? "open";
      const headFilter = q.get("head");
      const list = repo.pulls
        .filter((p) => state === "all" || p.state === state)
        .filter((p) => !headFilter || headFilter === `${this.userById(repo.ownerId).login}:${p.headRef}`)
        .sort((a, b) => b.number - a.number);
      return this.sendPage(
        req,
        res,
        q,
        list.map((p) => this.pullJson(repo, p)),
      );
    }
    if (!pullMatch) throw new HttpError(404, "Not Found");
    const p = repo.pulls.find((x) => x.number === Number(pullMatch[2]));
    if (!p) throw new HttpError(404, "Not Found");
    const sub = `${pullMatch[1]}${pullMatch[3] ?? ""}`;
    const dismissMatch = sub.match(/^pulls\/reviews\/(\d+)\/dismissals$/);

    if (sub === "pulls" && method === "GET") return this.send(res, 200, this.pullJson(repo, p));
    if (sub === "pulls" && method === "PATCH") {
      if (typeof body.title === "string") p.title = body.title;
      if (typeof body.body === "string") p.body = body.body;
      if (body.state === "closed" && p.state === "open") {
        p.state = "closed";
        p.closedAt = this.clock().toISOString();
        this.emit(repo, "pull_request", { action: "closed", pull_request: this.pullJson(repo, p) }, me.id);
      }
      p.updatedAt = this.clock().toISOString();
      return this.send(res, 200, this.pullJson(repo, p));
    }
    if (sub === "pulls/requested_reviewers" && method === "POST") {
      for (const login of (body.reviewers as string[] | undefined) ?? []) {
        const u = [...this.users.values()].find((x) => x.login.toLowerCase() === login.toLowerCase());
        if (!u)
          throw new HttpError(
            422,
            `Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the ${owner}/${name} repository.`,
          );
        if (!p.requested.includes(u.id)) p.requested.push(u.id);
      }
      return this.send(res, 201, this.pullJson(repo, p));
    }
    if (sub === "pulls/reviews" && method === "GET")
      return this.sendPage(
        req,
        res,
        q,
        p.reviews.map((r) => this.reviewJson(repo, p, r)),
      );
    if (sub === "pulls/reviews" && method === "POST") {
      const event = String(body.event ?? "");
      const states: Record<string, Review["state"]> = {
        APPROVE: "APPROVED",
        REQUEST_CHANGES: "CHANGES_REQUESTED",
        COMMENT: "COMMENTED",
      };
      const state = states[event];
      if (!state)
        throw new HttpError(
          422,
          "Unprocessable Entity: event must be APPROVE, REQUEST_CHANGES or COMMENT in this stand-in",
        );
      if (p.userId === me.id && state !== "COMMENTED")
        throw new HttpError(422, "Unprocessable Entity: Can not approve your own pull request");
      if (p.state !== "open") throw new HttpError(422, "Unprocessable Entity: pull request is closed");
      const headSha = repo.refs.get(p.headRef)!;
      const r: Review = {
        id: this.nextReviewId++,
        userId: me.id,
        body: String(body.body ?? ""),
        state,
        commitId: typeof body.commit_id === "string" ? body.commit_id : headSha,
        submittedAt: this.clock().toISOString(),
      };
      if (!repo.commits.has(r.commitId))
        throw new HttpError(422, "Unprocessable Entity: commit_id is not part of the pull request");
      p.reviews.push(r);
      p.requested = p.requested.filter((id) => id !== me.id);
      this.emit(
        repo,
        "pull_request_review",
        { action: "submitted", review: this.reviewJson(repo, p, r), pull_request: this.pullJson(repo, p) },
        me.id,
      );
      return this.send(res, 200, this.reviewJson(repo, p, r));
    }
    if (dismissMatch && method === "PUT") {
      const r = p.reviews.find((x) => x.id === Number(dismissMatch[1]));
      if (!r) throw new HttpError(404, "Not Found");
      if (r.state !== "APPROVED" && r.state !== "CHANGES_REQUESTED")
        throw new HttpError(422, "Can not dismiss a commented pull request review");
      r.state = "DISMISSED";
      this.emit(
        repo,
        "pull_request_review",
        { action: "dismissed", review: this.reviewJson(repo, p, r), pull_request: this.pullJson(repo, p) },
        me.id,
      );
      return this.send(res, 200, this.reviewJson(repo, p, r));
    }
    if (sub === "issues/comments" && method === "POST") {
      const c = {
        id: this.nextId++,
        userId: me.id,
        body: String(body.body ?? ""),
        createdAt: this.clock().toISOString(),
      };
      p.comments.push(c);
      return this.send(res, 201, this.commentJson(repo, p, c));
    }
    if (sub === "issues/comments" && method === "GET")
      return this.sendPage(
        req,
        res,
        q,
        p.comments.map((c) => this.commentJson(repo, p, c)),
      );
    if (sub === "issues/labels" && method === "POST") {
      for (const l of (body.labels as string[] | undefined) ?? [])
        if (!p.labels.includes(l)) p.labels.push(l);
      return this.send(
        res,
        200,
        p.labels.map((l) => this.labelJson(repo, l)),
      );
    }
    throw new HttpError(404, "Not Found");
  }

  private auth(req: IncomingMessage): StandInUser {
    const h = req.headers.authorization ?? "";
    const m = h.match(/^(?:token|bearer)\s+(.+)$/i);
    const id = m ? this.tokens.get(m[1]!) : undefined;
    if (id === undefined) throw new HttpError(401, "Requires authentication");
    return this.userById(id);
  }

  private userById(id: number): StandInUser {
    const u = this.users.get(id);
    if (!u) throw new HttpError(404, "Not Found");
    return u;
  }

  private repo(owner: string, name: string): Repo {
    const r = this.repos.get(`${owner}/${name}`);
    if (!r) throw new HttpError(404, "Not Found");
    return r;
  }

  private newCommit(parent: Commit | null, files: Map<string, string>, message: string): Commit {
    const sha = createHash("sha1")
      .update(
        `${parent?.sha ?? ""}\n${message}\n${++this.shaCounter}\n${[...files].map(([k, v]) => `${k}\0${v}`).join("\n")}`,
      )
      .digest("hex");
    return { sha, parent: parent?.sha ?? null, files, message };
  }

  private commitOn(repo: Repo, branch: string, path: string, content: string, message: string): Commit {
    const parent = repo.commits.get(repo.refs.get(branch)!)!;
    const files = new Map(parent.files);
    files.set(path, content);
    const c = this.newCommit(parent, files, message);
    repo.commits.set(c.sha, c);
    repo.refs.set(branch, c.sha);
    return c;
  }

  private emit(repo: Repo, event: string, payload: Record<string, unknown>, senderId: number): void {
    const body = JSON.stringify({
      ...payload,
      repository: this.repoJson(repo),
      sender: this.simpleUser(this.userById(senderId)),
    });
    for (const hook of this.hooks) {
      this.deliveries.push(
        fetch(hook.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/custos-stand-in",
            "x-github-event": event,
            "x-github-delivery": randomUUID(),
            "x-hub-signature-256": GitHubStandIn.sign(hook.secret, body),
          },
          body,
        }).then(
          async (r) => {
            await r.arrayBuffer();
            this.deliveryStatuses.push(r.status);
          },
          () => {
            this.deliveryStatuses.push(0);
          },
        ),
      );
    }
  }

  private send(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "x-github-media-type": "github.v3; format=json",
      ...headers,
    });
    res.end(text);
  }

  private sendPage(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, items: unknown[]): void {
    const perPage = Math.min(100, Number(q.get("per_page") ?? 30));
    const page = Math.max(1, Number(q.get("page") ?? 1));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const headers: Record<string, string> = {};
    if (page * perPage < items.length) {
      const next = new URL(req.url ?? "/", this.baseUrl);
      next.searchParams.set("page", String(page + 1));
      next.searchParams.set("per_page", String(perPage));
      headers.link = `<${next.toString()}>; rel="next"`;
    }
    this.send(res, 200, slice, headers);
  }

  // ---- GitHub shapes -----------------------------------------------------------------------

  private api(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  simpleUser(u: StandInUser): S["simple-user"] {
    const url = this.api(`/users/${u.login}`);
    return {
      login: u.login,
      id: u.id,
      node_id: Buffer.from(`04:User${u.id}`).toString("base64"),
      avatar_url: `${this.baseUrl}/avatars/u/${u.id}`,
      gravatar_id: "",
      url,
      html_url: `${this.baseUrl}/${u.login}`,
      followers_url: `${url}/followers`,
      following_url: `${url}/following{/other_user}`,
      gists_url: `${url}/gists{/gist_id}`,
      starred_url: `${url}/starred{/owner}{/repo}`,
      subscriptions_url: `${url}/subscriptions`,
      organizations_url: `${url}/orgs`,
      repos_url: `${url}/repos`,
      events_url: `${url}/events{/privacy}`,
      received_events_url: `${url}/received_events`,
      type: u.type,
      site_admin: false,
    };
  }

  private publicUser(u: StandInUser): S["public-user"] {
    const now = "2020-01-01T00:00:00Z";
    return {
      ...this.simpleUser(u),
      name: null,
      company: null,
      blog: null,
      location: null,
      email: null,
      hireable: null,
      bio: null,
      public_repos: 0,
      public_gists: 0,
      followers: 0,
      following: 0,
      created_at: now,
      updated_at: now,
    };
  }

  private repoJson(repo: Repo): S["full-repository"] {
    const owner = this.userById(repo.ownerId);
    const full = `${owner.login}/${repo.name}`;
    // the recorded real response, with this repository's names and URLs
    const text = JSON.stringify(repoFixture)
      .replaceAll("https://api.github.com", this.baseUrl)
      .replaceAll("https://github.com", this.baseUrl)
      .replaceAll("octokit-fixture-org/hello-world", full);
    const base = JSON.parse(text) as S["full-repository"];
    return {
      ...base,
      id: repo.id,
      name: repo.name,
      full_name: full,
      owner: this.simpleUser(owner),
      default_branch: repo.defaultBranch,
      private: true,
    };
  }

  private refJson(repo: Repo, branch: string, sha: string): S["git-ref"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    return {
      ref: `refs/heads/${branch}`,
      node_id: Buffer.from(`ref:${branch}`).toString("base64"),
      url: this.api(`/repos/${full}/git/refs/heads/${branch}`),
      object: { type: "commit", sha, url: this.api(`/repos/${full}/git/commits/${sha}`) },
    };
  }

  private fileCommitJson(repo: Repo, path: string, content: string, c: Commit): S["file-commit"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    const blobSha = createHash("sha1")
      .update(`blob ${Buffer.byteLength(content)}\0${content}`)
      .digest("hex");
    return {
      content: {
        name: path.split("/").pop()!,
        path,
        sha: blobSha,
        size: Buffer.byteLength(content),
        url: this.api(`/repos/${full}/contents/${path}`),
        html_url: `${this.baseUrl}/${full}/blob/${c.sha}/${path}`,
        git_url: this.api(`/repos/${full}/git/blobs/${blobSha}`),
        download_url: `${this.baseUrl}/raw/${full}/${c.sha}/${path}`,
        type: "file",
        _links: {
          self: this.api(`/repos/${full}/contents/${path}`),
          git: this.api(`/repos/${full}/git/blobs/${blobSha}`),
          html: `${this.baseUrl}/${full}/blob/${c.sha}/${path}`,
        },
      },
      commit: {
        sha: c.sha,
        node_id: Buffer.from(`commit:${c.sha}`).toString("base64"),
        url: this.api(`/repos/${full}/git/commits/${c.sha}`),
        html_url: `${this.baseUrl}/${full}/commit/${c.sha}`,
        message: c.message,
        parents: c.parent
          ? [
              {
                url: this.api(`/repos/${full}/git/commits/${c.parent}`),
                html_url: `${this.baseUrl}/${full}/commit/${c.parent}`,
                sha: c.parent,
              },
            ]
          : [],
        tree: { url: this.api(`/repos/${full}/git/trees/${c.sha}`), sha: c.sha },
      },
    };
  }

  private contentJson(repo: Repo, path: string, content: string, ref: string): S["content-file"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    const blobSha = createHash("sha1")
      .update(`blob ${Buffer.byteLength(content)}\0${content}`)
      .digest("hex");
    const url = this.api(`/repos/${full}/contents/${path}?ref=${ref}`);
    return {
      type: "file",
      encoding: "base64",
      size: Buffer.byteLength(content),
      name: path.split("/").pop()!,
      path,
      content: Buffer.from(content)
        .toString("base64")
        .replace(/(.{60})/g, "$1\n"),
      sha: blobSha,
      url,
      git_url: this.api(`/repos/${full}/git/blobs/${blobSha}`),
      html_url: `${this.baseUrl}/${full}/blob/${ref}/${path}`,
      download_url: `${this.baseUrl}/raw/${full}/${ref}/${path}`,
      _links: {
        self: url,
        git: this.api(`/repos/${full}/git/blobs/${blobSha}`),
        html: `${this.baseUrl}/${full}/blob/${ref}/${path}`,
      },
    };
  }

  pullJson(repo: Repo, p: Pull): S["pull-request"] {
    const owner = this.userById(repo.ownerId);
    const full = `${owner.login}/${repo.name}`;
    const url = this.api(`/repos/${full}/pulls/${p.number}`);
    const html = `${this.baseUrl}/${full}/pull/${p.number}`;
    const issue = this.api(`/repos/${full}/issues/${p.number}`);
    const repoJson = this.repoJson(repo) as unknown as S["repository"];
    const link = (href: string) => ({ href });
    return {
      url,
      id: 5000 + p.number,
      node_id: Buffer.from(`PR:${p.number}`).toString("base64"),
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: issue,
      commits_url: `${url}/commits`,
      review_comments_url: `${url}/comments`,
      review_comment_url: this.api(`/repos/${full}/pulls/comments{/number}`),
      comments_url: `${issue}/comments`,
      statuses_url: this.api(`/repos/${full}/statuses/${repo.refs.get(p.headRef)}`),
      number: p.number,
      state: p.state,
      locked: false,
      title: p.title,
      user: this.simpleUser(this.userById(p.userId)),
      body: p.body,
      labels: p.labels.map((l) => ({ ...this.labelJson(repo, l), description: null })),
      milestone: null,
      created_at: p.createdAt,
      updated_at: p.updatedAt,
      closed_at: p.closedAt,
      merged_at: null,
      merge_commit_sha: null,
      assignee: null,
      assignees: [],
      requested_reviewers: p.requested.map((id) => this.simpleUser(this.userById(id))),
      requested_teams: [],
      head: {
        label: `${owner.login}:${p.headRef}`,
        ref: p.headRef,
        repo: repoJson,
        sha: repo.refs.get(p.headRef)!,
        user: this.simpleUser(owner),
      },
      base: {
        label: `${owner.login}:${p.baseRef}`,
        ref: p.baseRef,
        repo: repoJson,
        sha: repo.refs.get(p.baseRef)!,
        user: this.simpleUser(owner),
      },
      _links: {
        comments: link(`${issue}/comments`),
        commits: link(`${url}/commits`),
        statuses: link(this.api(`/repos/${full}/statuses/${repo.refs.get(p.headRef)}`)),
        html: link(html),
        issue: link(issue),
        review_comments: link(`${url}/comments`),
        review_comment: link(this.api(`/repos/${full}/pulls/comments{/number}`)),
        self: link(url),
      },
      author_association: "MEMBER",
      auto_merge: null,
      draft: false,
      merged: false,
      mergeable: true,
      mergeable_state: "clean",
      merged_by: null,
      comments: p.comments.length,
      review_comments: 0,
      maintainer_can_modify: false,
      commits: 1,
      additions: 1,
      deletions: 0,
      changed_files: 1,
    };
  }

  private reviewJson(repo: Repo, p: Pull, r: Review): S["pull-request-review"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    const html = `${this.baseUrl}/${full}/pull/${p.number}#pullrequestreview-${r.id}`;
    const prUrl = this.api(`/repos/${full}/pulls/${p.number}`);
    return {
      id: r.id,
      node_id: Buffer.from(`PRR:${r.id}`).toString("base64"),
      user: this.simpleUser(this.userById(r.userId)),
      body: r.body,
      state: r.state,
      html_url: html,
      pull_request_url: prUrl,
      _links: { html: { href: html }, pull_request: { href: prUrl } },
      submitted_at: r.submittedAt,
      commit_id: r.commitId,
      author_association: "MEMBER",
    };
  }

  private commentJson(
    repo: Repo,
    p: Pull,
    c: { id: number; userId: number; body: string; createdAt: string },
  ): S["issue-comment"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    return {
      id: c.id,
      node_id: Buffer.from(`IC:${c.id}`).toString("base64"),
      url: this.api(`/repos/${full}/issues/comments/${c.id}`),
      html_url: `${this.baseUrl}/${full}/pull/${p.number}#issuecomment-${c.id}`,
      body: c.body,
      user: this.simpleUser(this.userById(c.userId)),
      created_at: c.createdAt,
      updated_at: c.createdAt,
      issue_url: this.api(`/repos/${full}/issues/${p.number}`),
      author_association: "MEMBER",
    };
  }

  private labelId(name: string): number {
    return 9000 + (createHash("sha1").update(name).digest().readUInt16BE(0) % 1000);
  }

  private labelJson(repo: Repo, name: string): S["label"] {
    const full = `${this.userById(repo.ownerId).login}/${repo.name}`;
    return {
      id: this.labelId(name),
      node_id: Buffer.from(`L:${name}`).toString("base64"),
      url: this.api(`/repos/${full}/labels/${encodeURIComponent(name)}`),
      name,
      description: null,
      color: "ededed",
      default: false,
    };
  }
}
