"""Creates the label-counts pipeline on a cluster (the appliance's embedded server by default),
waits for its job and prints the counts it computed from the labels repo.

    python3 examples/label-counts/try.py [grpc://127.0.0.1:30650]
"""

import json
import os
import sys

from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

address = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:30650"
pach = Client.from_pachd_address(address)
spec = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipeline.json")).read()
pipeline = pps.Pipeline(name=json.loads(spec)["pipeline"]["name"])
pach.pps.create_pipeline_v2(create_pipeline_request_json=spec, update=pach.pps.pipeline_exists(pipeline))
job = next(pach.pps.list_job(pipeline=pipeline))
job = pach.pps.inspect_job(job=job.job, wait=True)
print(f"job {job.job.id}: {pps.JobState(job.state).name} {job.reason}".rstrip())
if job.state != pps.JobState.JOB_SUCCESS:
    sys.exit(1)
counts = pfs.File.from_uri(f"{pipeline.name}@{job.job.id}:/counts.json")
print(b"".join(m.value for m in pach.pfs.get_file(file=counts)).decode(), end="")
