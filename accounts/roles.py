"""The two roles of TestHub, as Django groups created by a migration."""

LAB_MANAGERS = "lab managers"
TESTERS = "testers"


def _groups(user) -> set[str]:
    """The user's groups, read once for the user object at hand: a web process keeps signed-in users while
    nobody's account or groups change (accounts.kept), and with them their groups."""
    if not hasattr(user, "_testhub_groups"):
        user._testhub_groups = set(user.groups.values_list("name", flat=True))
    return user._testhub_groups


def role_names(user) -> set[str]:
    """What decides what this user may see: their groups, and whether they are a superuser."""
    if not (user and user.is_authenticated):
        return set()
    return _groups(user) | ({"superuser"} if user.is_superuser else set())


def is_lab_manager(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or LAB_MANAGERS in _groups(user)))


def is_tester(user) -> bool:
    return bool(user and user.is_authenticated and TESTERS in _groups(user))


def has_any_role(user) -> bool:
    return is_lab_manager(user) or is_tester(user)


# What each role may do in Django admin (the API checks roles itself, see accounts.permissions).
_LAB_MANAGER_PERMISSIONS = {
    "catalog": ("add", "change", "delete", "view"),
    "nodes": ("add", "change", "delete", "view"),
    "execution": ("add", "change", "delete", "view"),
    "reporting": ("view",),
}
_TESTER_PERMISSIONS = {
    "catalog": ("view",),
    "nodes": ("view",),
    "execution": ("view",),
    "reporting": ("view",),
}


def ensure_role_groups(sender=None, **kwargs) -> None:
    """Create both groups with exactly their admin permissions; safe to run after every migrate."""
    from django.contrib.auth.models import Group, Permission

    for group_name, grants in ((LAB_MANAGERS, _LAB_MANAGER_PERMISSIONS), (TESTERS, _TESTER_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=group_name)
        wanted = [
            permission
            for permission in Permission.objects.filter(content_type__app_label__in=grants).select_related(
                "content_type"
            )
            if permission.codename.split("_", 1)[0] in grants[permission.content_type.app_label]
        ]
        group.permissions.set(wanted)


class LabAdminMixin:
    """Django admin by role: lab managers change the lab and run its actions; other staff only look.

    Staff status lets a person into admin; the role decides what they may do there. Every admin action is
    declared with permissions=["lab_manager"], which Django checks through has_lab_manager_permission.
    """

    def has_add_permission(self, request, *args):
        return is_lab_manager(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return is_lab_manager(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_lab_manager(request.user) and super().has_delete_permission(request, obj)

    def has_lab_manager_permission(self, request):
        return is_lab_manager(request.user)


class ReadOnlyAdminMixin:
    """Rows written by TestHub itself (tasks, cases, reports, events): admin shows them, nobody edits them."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_lab_manager_permission(self, request):
        return is_lab_manager(request.user)
