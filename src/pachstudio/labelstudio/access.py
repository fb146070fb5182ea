"""Who may use a project's Pachyderm storages and files: the users of the project's organization.

Label Studio's open-source `Project.has_permission` lets every signed-in user in (it assumes one
organization per installation), while its project API shows a user only the projects of their
active organization. The storages and data URLs follow the project API: a user of another
organization gets 404 for the storages and 403 for the files, never the project's data.
"""

from typing import Optional

from projects.models import Project
from rest_framework.exceptions import NotFound


def may_use(user, project: Optional[Project]) -> bool:
    return (
        project is not None
        and getattr(user, "is_authenticated", False)
        and project.organization_id == getattr(user, "active_organization_id", None)
        and project.has_permission(user)
    )


def project_or_404(user, project_id) -> Project:
    """The project the request names, when the user may use it; 404 otherwise (as Label Studio's
    project API answers), so a stranger cannot tell another organization's projects exist."""
    try:
        project = Project.objects.filter(pk=int(project_id)).first()
    except (TypeError, ValueError):
        project = None
    if not may_use(user, project):
        raise NotFound(f"project {project_id} not found")
    return project


def _organization(request):
    return getattr(request.user, "active_organization_id", None)


class OrganizationListMixin:
    """List views: the `project` query parameter must be a project of the user's organization."""

    def get_queryset(self):
        project_id = self.request.query_params.get("project")
        if project_id is not None:
            project_or_404(self.request.user, project_id)
        return super().get_queryset()


class OrganizationObjectMixin:
    """Detail and sync views: storages of other organizations' projects do not exist (404)."""

    def get_queryset(self):
        return super().get_queryset().filter(project__organization_id=_organization(self.request))


class OrganizationBodyMixin:
    """Validate and files-preview calls name a project (and maybe a storage id) in the body."""

    def create(self, request, *args, **kwargs):
        if request.data.get("project") is not None:
            project_or_404(request.user, request.data.get("project"))
        storage_id = request.data.get("id")
        if storage_id is not None:
            model = self.serializer_class.Meta.model
            try:
                found = model.objects.filter(pk=int(storage_id), project__organization_id=_organization(request))
            except (TypeError, ValueError):
                found = model.objects.none()
            if not found.exists():
                raise NotFound(f"storage {storage_id} not found")
        return super().create(request, *args, **kwargs)
