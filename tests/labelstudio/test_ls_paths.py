"""Path rules of the storage: what a Source imports and which paths are refused."""
import pytest

from pachstudio.labelstudio.storage.paths import BadPath, KeyFilter, mount_name, normalize_prefix, safe_join


@pytest.mark.parametrize('raw, clean', [('', ''), (None, ''), ('/images/', 'images'), ('a/b', 'a/b'),
                                        ('a//b/', 'a/b'), ('./a', 'a')])
def test_prefix_forms_mean_the_same_folder(raw, clean):
    assert normalize_prefix(raw) == clean


@pytest.mark.parametrize('evil', ['../x', 'a/../../x', 'a/..', 'a\\b', 'a\x00b'])
def test_prefix_that_leaves_the_repo_is_refused(evil):
    with pytest.raises(BadPath):
        normalize_prefix(evil)


@pytest.mark.parametrize('evil', ['../etc/passwd', '/etc/passwd', 'a/../../b', '', 'x\x00y'])
def test_safe_join_refuses_escapes(evil):
    with pytest.raises(BadPath):
        safe_join('/pfs/m', evil)


def test_safe_join_keeps_inside_paths():
    assert safe_join('/pfs/m', 'a/b.png') == '/pfs/m/a/b.png'


def test_prefix_is_a_folder_not_a_string_prefix():
    keep = KeyFilter('img', recursive=True)
    assert keep('img/a.png') and keep('img/sub/b.png')
    assert not keep('img2/a.png') and not keep('imgx.png') and not keep('img/')


def test_non_recursive_keeps_direct_children_only():
    keep = KeyFilter('img', recursive=False)
    assert keep('img/a.png') and not keep('img/sub/b.png')
    assert KeyFilter('', recursive=False)('top.png') and not KeyFilter('', recursive=False)('d/x.png')


def test_regex_matches_path_or_file_name():
    assert KeyFilter('', r'.*\.png$', True)('a/b.png')
    assert KeyFilter('', r'b\d\.png', True)('deep/b1.png')
    assert not KeyFilter('', r'b\d\.png', True)('deep/c1.png')


def test_mount_names_are_stable_distinct_and_safe():
    name = mount_name('ro', 'default', 'images', 'master')
    assert name == mount_name('ro', 'default', 'images', 'master')
    assert name != mount_name('ro', 'other', 'images', 'master') != mount_name('rw', 'default', 'images', 'master')
    assert all(c.isalnum() or c in '_-' for c in name)
