// The places a lab's rollbacks may act on (src/runner/undo-scope.ts): its directory under workdir,
// each container's merged root and nspawn's /run entries and cgroups of that container, aplspawn's
// host-wide records in /run and /var/lib, the image store, a build's temp tree, the lab key, and the
// owner's copies. A journal entry naming anything else is refused.
import { HOST_LOCK_DIR } from "../host/lock.js";
import { CLAIMS_DIR as LOOP_CLAIMS_DIR } from "../image/loop-claims.js";
import type { PathRule, UndoScope } from "../runner/undo-scope.js";
import { CLAIMS_DIR } from "./claims.js";
import { entryScope } from "./entries.js";
import { RANGES_DIR } from "./id-ranges.js";
import { controlPathDir } from "./inventory.js";

// A container's name as the config accepts it (config/schema.ts): no "/", never "." or "..".
const CONTAINER_NAME = /^[a-z][a-z0-9-]{0,39}$/;

/** A lab's places on the host, as its config puts them (workflows/lab-params.ts labPlaces). */
export interface LabPlaces {
  /** The lab's directory (journal, key, layers). */
  labDir: string;
  /** The lab's private key (its .pub beside it). */
  key: string;
  /** The image store labs share. */
  imageStore: string;
  /** Where the containers' merged roots are (containers.machinesDir). */
  machinesDir: string;
  /** The directory of the owner's copies below a home, starting with "/" (config/paths.ts ownerFiles). */
  ownerDirInHome: string;
}

/** Where undoing an entry of the lab may remove, unmount or rewrite. */
export function labUndoScope(p: LabPlaces): UndoScope {
  const everyEntry: PathRule[] = [
    p.labDir,
    p.imageStore,
    { only: p.key },
    { only: `${p.key}.pub` },
    controlPathDir(p.labDir),
    // The holder's note in a lock file of aplspawn's (src/image/store-lock.ts writes one).
    HOST_LOCK_DIR,
    CLAIMS_DIR,
    LOOP_CLAIMS_DIR,
    RANGES_DIR,
    // Records of settings held (src/lab/holds.ts), and the temp files of their writers.
    /^\/run\/\.?aplspawn-holds?\.[^/]*$/,
    // An image build's temp tree beside its image, wherever that goes (tasks/image/build.ts).
    /\/\.[^/]+\.build-[0-9a-f]{8}(\/.*)?$/,
    // The owner's copies and masters' directory, in whichever home (removed as the owner).
    new RegExp(`${p.ownerDirInHome.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(/.*)?$`),
  ];
  return (e) => {
    const name = entryScope(e);
    if (name === undefined || !CONTAINER_NAME.test(name)) return everyEntry;
    const m = p.machinesDir;
    return [
      ...everyEntry,
      `${m}/${name}`,
      `${m}/.#${name}.lck`,
      `/run/systemd/nspawn/propagate/${name}`,
      /^\/run\/systemd\/nspawn\/locks\/inode-\d+:\d+$/,
      // Its cgroups in each hierarchy, and their shared parent (src/lab/cgroups.ts).
      new RegExp(`^/sys/fs/cgroup(/[^/]+)*/aplspawn(/${name}(/.*)?)?$`),
    ];
  };
}
