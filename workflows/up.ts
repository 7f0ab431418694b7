// up: the whole lab, as the user sees it on screen: preflight → network, image (get, attach) and lab
// key side by side → (containers no longer in the config removed) → containers, concurrently →
// inventory → ansible ping.
import { containerSpecs } from "../config/containers.js";
import { type LabImage, labImages } from "../config/images.js";
import type { Config } from "../config/schema.js";
import { entryScope } from "../src/lab/entries.js";
import { group, type Step, undo } from "../src/runner/task.js";
import { imageAttachSteps } from "./attach.js";
import { clusterUp } from "./cluster.js";
import { imageGetSteps } from "./getimage.js";
import {
  containersClaimStep,
  containersGroup,
  entries,
  inventorySteps,
  labShareStep,
  preflightSteps,
  snapshotLayersSteps,
  sshKeyStep,
} from "./lab-steps.js";
import { netupSteps } from "./netup.js";
import { allPackagesSteps } from "./packages.js";
import type { WorkflowBuilder } from "./types.js";

const getAndAttach = (c: Config, img: LabImage): Step[] => [
  ...imageGetSteps(c, img),
  ...imageAttachSteps(img),
];

/** The lab's images got and attached: one image's steps in order, several images side by side. */
function imagesGroup(c: Config): Step {
  const images = labImages(c);
  if (images.length === 1)
    return group("up.image", "Getting and attaching the image", getAndAttach(c, images[0]!));
  return group(
    "up.image",
    `Getting and attaching ${images.length} images`,
    images.map((img) =>
      group(
        `up.image[${img.id ?? "image"}]`,
        `Image ${img.path} (${img.sets.join(", ")})`,
        getAndAttach(c, img),
      ),
    ),
    images.length,
  );
}

/** The up workflow. */
export const up: WorkflowBuilder = (c, o) => {
  // A lab across hosts: each host runs its share with this same workflow, driven by Ansible.
  if (c.cluster) return clusterUp(c, o);
  const specs = containerSpecs(c);
  const names = specs.map((s) => s.name);
  return {
    name: "up",
    steps: [
      ...preflightSteps(c, { bridgeMustExist: false }),
      containersClaimStep(c),
      labShareStep(c),
      // The network, the image and the lab key need nothing of each other: made side by side.
      group(
        "up.prepare",
        "Preparing the network, the image and the lab key",
        [...netupSteps(c), imagesGroup(c), sshKeyStep(c, o.owner)],
        3,
        // Done before the containers start: one line from then on.
        { collapse: true },
      ),
      // What the lab needs in its images (sshd, python3), once: the network is up by now.
      ...allPackagesSteps(c),
      // A smaller count (or another prefix or range): the containers the config no longer names go.
      undo(
        "containers.extra",
        "Removing containers no longer in the config",
        (e) => entries.container(e) && !names.includes(entryScope(e) ?? ""),
        entries.lanes(c, o),
      ),
      // `aplspawn test --reuse-prepare`: the containers start on the prepared state it kept.
      ...(o.fromSnapshot ? snapshotLayersSteps(c, specs, o.fromSnapshot) : []),
      containersGroup(c, specs, o),
      ...inventorySteps(c, o.owner, o.ansibleUser),
    ],
  };
};
