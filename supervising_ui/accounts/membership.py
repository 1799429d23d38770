"""Who may see and label which project, and an admin's choice of a project's members.

The rule lives in ``can_access`` alone: admins see every project; any other active user sees
a project open to everyone (the default) and a members_only project only if they are one of
its members. Labeling, images, search, the model page and job status all ask it, and a
project the user may not see answers 404, as one that does not exist. Members are kept while
a project is open to everyone, so closing it again restores the same list.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError

from ..echo import shorten
from ..extensions import db
from ..models import Project, ProjectMember, User

# "everyone": every active user may label the project; "members": only its members and admins.
ACCESS_CHOICES = ("everyone", "members")
# Built once: every request on a members_only project runs it (the primary key answers it).
_IS_MEMBER = select(ProjectMember.project_id).where(
    ProjectMember.user_id == bindparam("user_id"),
    ProjectMember.project_id == bindparam("project_id"))


class MembershipError(ValueError):
    """A membership change that cannot be carried out, with a message for the user."""


@dataclass(frozen=True)
class ProjectAccess:
    """Who may label a project: everyone or only its members (by name; admins always may)."""

    members_only: bool
    members: list[User]


def can_access(user, project, member_of: Collection[int] | None = None) -> bool:
    """Return whether user may label project and see its images and search (the one rule).

    project is a Project or any row with id and members_only (labeling's ProjectSettings).
    member_of, when given, holds the ids of user's projects (member_project_ids), so that
    a list of projects is checked without a query per project.
    """
    if project is None or not (user.is_authenticated and user.is_active):
        return False
    if user.is_admin or not project.members_only:
        return True
    if member_of is not None:
        return project.id in member_of
    return db.session.connection().execute(
        _IS_MEMBER, {"user_id": user.id, "project_id": project.id}).first() is not None


def member_project_ids(user_id: int) -> set[int]:
    """Return the ids of the projects user_id is a member of (one query on the key's prefix)."""
    return set(db.session.scalars(select(ProjectMember.project_id).where(
        ProjectMember.user_id == user_id)))


def visible_projects(user) -> list[Project]:
    """Return the projects user may see, by name (two queries however many projects)."""
    projects = db.session.scalars(select(Project).order_by(Project.name)).all()
    member_of = member_project_ids(user.id) if user.is_authenticated and not user.is_admin \
        else set()
    return [project for project in projects if can_access(user, project, member_of)]


def visible_project(user, project_id: int) -> Project | None:
    """Return the project with this id if user may see it, else None (a 404 to the views)."""
    project = db.session.get(Project, project_id)
    return project if can_access(user, project) else None


def project_access(project: Project) -> ProjectAccess:
    """Return whether project is members-only and its members, by name."""
    members = db.session.scalars(select(User).join(ProjectMember, ProjectMember.user_id == User.id)
                                 .where(ProjectMember.project_id == project.id)
                                 .order_by(User.username)).all()
    return ProjectAccess(project.members_only, list(members))


def choosable_users() -> list[User]:
    """Return the users an admin may choose as members: every labeler, by name."""
    return list(db.session.scalars(select(User).where(User.role != "admin")
                                   .order_by(User.username)))


def set_members(project: Project, choice: str, user_ids: Iterable[str]) -> ProjectAccess:
    """Save the admin form: "everyone" or "members", and exactly the labelers ticked (by id)."""
    if choice not in ACCESS_CHOICES:
        raise MembershipError(f"choose who may label the project: {' or '.join(ACCESS_CHOICES)}, "
                              f"not {shorten(choice)!r}")
    by_id = {str(user.id): user for user in choosable_users()}
    chosen = set()
    for user_id in user_ids:
        if user_id not in by_id:
            raise MembershipError(f"no labeler with id {shorten(user_id)!r}")
        chosen.add(by_id[user_id].id)
    return _save(project, choice == "members", chosen)


def change_members(project: Project, add: Iterable[str] = (), remove: Iterable[str] = (),
                   members_only: bool | None = None) -> ProjectAccess:
    """Add and remove members by user name and/or switch members_only (None: leave it)."""
    added, removed = _users_named(add), _users_named(remove)
    both = sorted(set(added) & set(removed))
    if both:
        raise MembershipError(f"{', '.join(both)}: both added and removed")
    chosen = {user.id for user in project_access(project).members} - {
        user.id for user in removed.values()}
    chosen |= {user.id for user in added.values()}
    return _save(project, project.members_only if members_only is None else members_only, chosen)


def _users_named(names: Iterable[str]) -> dict[str, User]:
    """Return the labelers called names, refusing unknown names and admins."""
    users = {}
    for name in names:
        user = db.session.scalar(select(User).where(User.username == name.strip()))
        if user is None:
            raise MembershipError(f"no user called {shorten(name)!r}")
        if user.is_admin:
            raise MembershipError(f"{user.username!r} is an admin: admins see every project")
        users[user.username] = user
    return users


def _save(project: Project, members_only: bool, member_ids: set[int]) -> ProjectAccess:
    """Make project's members exactly member_ids and set members_only, in one transaction."""
    current = set(db.session.scalars(select(ProjectMember.user_id).where(
        ProjectMember.project_id == project.id)))
    if current - member_ids:
        db.session.execute(delete(ProjectMember).where(
            ProjectMember.project_id == project.id,
            ProjectMember.user_id.in_(current - member_ids)))
    db.session.add_all(ProjectMember(project_id=project.id, user_id=user_id)
                       for user_id in member_ids - current)
    project.members_only = members_only
    try:
        db.session.commit()
    except IntegrityError:  # another admin added the same member meanwhile
        db.session.rollback()
        raise MembershipError("the members changed meanwhile: look at them and try again") from None
    return project_access(project)


def describe(project: Project, access: ProjectAccess) -> str:
    """Return one line on who may label project (what the console prints, the page flashes)."""
    names = ", ".join(user.username + ("" if user.active else " (deactivated)")
                      for user in access.members) or "none"
    if access.members_only:
        return f"{project.name!r}: only its members and admins may label it; members: {names}"
    return (f"{project.name!r}: every labeler may label it; members, kept for when only "
            f"members may: {names}")
