"""Small helpers for the Label Studio storage tests: data in Pachyderm through the real SDK."""
import uuid

import grpc
from pachyderm_sdk.api import pfs

TEXT_CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
               '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
IMAGE_CONFIG = ('<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
                '<Choice value="cat"/><Choice value="dog"/></Choices></View>')


def unique(name: str) -> str:
    return f'{name}-{uuid.uuid4().hex[:8]}'


def make_repo(pach, name=None, project='default') -> str:
    repo = name or unique('repo')
    pach.pfs.create_repo(repo=pfs.Repo.from_uri(f'{project}/{repo}'))
    return repo


def put(pach, repo, files: dict, branch='master', project='default') -> str:
    """One commit: a value of None deletes the path. Returns the commit id."""
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f'{project}/{repo}@{branch}')) as commit:
        for path, data in files.items():
            if data is None:
                commit.delete_file(path=path)
            else:
                commit.put_file_from_bytes(path=path, data=data if isinstance(data, bytes) else data.encode())
    return commit.id


def commits(pach, repo, branch='master', project='default') -> list:
    """Commit infos of the branch, newest first."""
    # The branch's history from its head (pachd leaves Commit.branch empty in answers).
    try:
        return list(pach.pfs.list_commit(repo=pfs.Repo.from_uri(f'{project}/{repo}'),
                                         to=pfs.Commit.from_uri(f'{project}/{repo}@{branch}')))
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return []
        raise


def read(pach, repo, path, ref='master', project='default') -> bytes:
    with pach.pfs.pfs_file(file=pfs.File.from_uri(f'{project}/{repo}@{ref}:{path}')) as f:
        return f.read()


def listing(pach, repo, ref='master', project='default', prefix='/') -> set:
    out = set()
    for info in pach.pfs.walk_file(file=pfs.File.from_uri(f'{project}/{repo}@{ref}:{prefix}')):
        if info.file_type == pfs.FileType.FILE:
            out.add(info.file.path.lstrip('/'))
    return out


def error_text(answer) -> str:
    """Every message string of a Label Studio error answer, unescaped."""
    def strings(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)
        elif isinstance(value, str):
            yield value
    try:
        return '\n'.join(strings(answer.json()))
    except ValueError:
        return answer.text
