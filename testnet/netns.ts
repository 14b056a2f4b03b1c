/**
 * A lab of Linux network namespaces joined by a bridge: each node gets its
 * own namespace and address (10.x.y.i/24), a link set down is a partition.
 * Needs root and `ip`; {@linkcode NetnsLab.create} says so when it cannot
 * make them. Names carry the process id, so concurrent labs do not meet,
 * and {@linkcode NetnsLab.destroy} removes everything it made.
 *
 * @module
 */

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Namespaces, veth pairs and a bridge, for `n` nodes. */
export class NetnsLab {
  /** The namespace of each node. */
  readonly namespaces: string[];
  /** The address of each node. */
  readonly addresses: string[];
  readonly #bridge: string;
  readonly #hostLinks: string[];
  readonly #made: (() => Promise<void>)[] = [];

  private constructor(n: number, tag: string, subnet: string) {
    this.#bridge = `vnb${tag}`;
    this.namespaces = Array.from({ length: n }, (_, i) => `vn${tag}-${i}`);
    this.#hostLinks = Array.from({ length: n }, (_, i) => `vnh${tag}x${i}`);
    this.addresses = Array.from({ length: n }, (_, i) => `${subnet}.${i + 1}`);
  }

  /**
   * Makes the lab, or explains why it cannot (not root, no `ip`, no
   * namespaces): `{ lab }` or `{ reason }`. Nothing is left behind on failure.
   */
  static async create(n: number): Promise<{ lab: NetnsLab } | { lab?: undefined; reason: string }> {
    if (n > 250) return { reason: "at most 250 nodes" };
    // Short names (interface names have at most 15 characters), unique per process.
    const tag = (Deno.pid % 100_000).toString(36);
    const subnet = `10.${100 + (Deno.pid % 100)}.${Math.floor(Deno.pid / 100) % 250}`;
    const lab = new NetnsLab(n, tag, subnet);
    try {
      await lab.#build();
      return { lab };
    } catch (err) {
      await lab.destroy();
      return { reason: err instanceof Error ? err.message : String(err) };
    }
  }

  async #build(): Promise<void> {
    await ip("link", "add", this.#bridge, "type", "bridge");
    this.#made.push(() => ip("link", "del", this.#bridge));
    await ip(
      "addr",
      "add",
      `${this.addresses[0].replace(/\.\d+$/, ".254")}/24`,
      "dev",
      this.#bridge,
    );
    await ip("link", "set", this.#bridge, "up");
    for (const [i, ns] of this.namespaces.entries()) {
      await ip("netns", "add", ns);
      this.#made.push(() => ip("netns", "del", ns));
      const host = this.#hostLinks[i];
      await ip("link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns);
      this.#made.push(() => ip("link", "del", host));
      await ip("link", "set", host, "master", this.#bridge);
      await ip("link", "set", host, "up");
      await ip("-n", ns, "addr", "add", `${this.addresses[i]}/24`, "dev", "eth0");
      await ip("-n", ns, "link", "set", "eth0", "up");
      await ip("-n", ns, "link", "set", "lo", "up");
    }
  }

  /** The command prefix that runs a program in node `i`'s namespace. */
  prefix(i: number): string[] {
    return ["ip", "netns", "exec", this.namespaces[i]];
  }

  /** Cuts node `i` off from every other (its link goes down). */
  partition(i: number): Promise<void> {
    return ip("link", "set", this.#hostLinks[i], "down");
  }

  /** Puts node `i` back (its link comes up). */
  heal(i: number): Promise<void> {
    return ip("link", "set", this.#hostLinks[i], "up");
  }

  /** Removes everything made, newest first; never throws. */
  async destroy(): Promise<void> {
    while (this.#made.length > 0) {
      await this.#made.pop()!().catch(() => {});
    }
  }
}
