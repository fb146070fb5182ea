/* pachstudio:pachyderm-provider */ {
  name: "pachyderm",
  title: "Pachyderm",
  description: "Versioned data in a Pachyderm repo: import files from a branch or a pinned commit, export annotations as one commit per Sync",
  icon: (props) => __JSX__.jsxs("svg", {
    viewBox: "0 0 40 40", width: 40, height: 40, fill: "none", role: "img", "aria-label": "Pachyderm",
    className: props && props.className,
    children: [
      __JSX__.jsx("rect", { x: 2, y: 2, width: 36, height: 36, rx: 9, fill: "#4a2c83" }),
      __JSX__.jsx("path", { d: "M13 30V11h8.5a6.5 6.5 0 0 1 0 13H13", stroke: "#fff", strokeWidth: 3.2, strokeLinecap: "round", strokeLinejoin: "round" }),
      __JSX__.jsx("circle", { cx: 27.5, cy: 29, r: 2.6, fill: "#f5b83d" })
    ]
  }),
  fields: [
    {
      name: "pach_project", type: "text", label: "Pachyderm project", placeholder: "default",
      description: "Leave blank for the project of the cluster's config context, else default",
      schema: __STRING__().optional().default("")
    },
    {
      name: "repo", type: "text", label: "Repository", required: true, placeholder: "images",
      description: "Name of the repo in that project",
      schema: __STRING__().min(1, "Repository is required")
    },
    {
      name: "branch", type: "text", label: "Branch", placeholder: "master",
      description: "A Target creates it if it is missing",
      schema: __STRING__().default("master")
    },
    {
      name: "commit", type: "text", label: "Commit (optional)", placeholder: "commit id, or blank for the head of the branch",
      description: "Pin the Source to one commit; blank follows the branch",
      schema: __STRING__().optional().default(""), target: "import"
    },
    {
      name: "predictions_from", type: "text", label: "Predictions from (optional)", placeholder: "[project/]repo@branch, e.g. predict@master",
      description: "A branch holding <path>.json predictions of the tasks from <path> (a pipeline's output): each Sync adds them as pre-annotations",
      schema: __STRING__().optional().default(""), target: "import"
    },
    {
      name: "prefix", type: "text", label: "Path prefix", placeholder: "labels",
      description: "Folder in the repo the annotation files are written to",
      schema: __STRING__().optional().default(""), target: "export"
    },
    {
      name: "file_format", type: "select", label: "File format",
      description: "Every file name ends in .json",
      options: [
        { value: "annotation", label: "One file per annotation (prefix/<annotation id>.json)" },
        { value: "task", label: "One file per task, with all its annotations (prefix/<task id>.json)" }
      ],
      schema: __STRING__().default("annotation"), target: "export"
    },
    {
      name: "layout", type: "select", label: "Layout",
      description: "Like the data: a task's labels at prefix/<path of its source file>.json (one file per task), so a pipeline can join images and labels by path",
      options: [
        { value: "id", label: "By id (prefix/<id>.json)" },
        { value: "source_path", label: "Like the data (prefix/<source path>.json)" }
      ],
      schema: __STRING__().default("id"), target: "export"
    },
    {
      name: "export_formats_text", type: "text", label: "Export formats (optional)", placeholder: "COCO, YOLO",
      description: "Label Studio export formats written to prefix/exports/ in each Sync's commit that changes labels; images are referred to by Pachyderm path and commit",
      schema: __STRING__().optional().default(""), target: "export"
    },
    {
      name: "splits", type: "text", label: "Splits (optional)", placeholder: "train 80, val 10, test 10, seed 7",
      description: "Frozen splits: each task's split from a hash of its source path and the seed, in every label file, the manifest and per split in the exports",
      schema: __STRING__().optional().default(""), target: "export"
    }
  ],
  layout: [
    { fields: ["pach_project"] },
    { fields: ["repo", "branch"] },
    { fields: ["commit"] },
    { fields: ["predictions_from"] },
    { fields: ["prefix"] },
    { fields: ["file_format"] },
    { fields: ["layout"] },
    { fields: ["export_formats_text"] },
    { fields: ["splits"] }
  ]
}
