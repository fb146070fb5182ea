"""PPS: pipelines, the jobs that run them and each datum's sandbox, and `pps_v2.API` over them
(`service`)."""
