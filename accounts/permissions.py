from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.roles import has_any_role, is_lab_manager


class LabPermission(BasePermission):
    """Anyone with a role reads; only lab managers change the lab."""

    message = "Only lab managers can change products, tools and nodes."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return has_any_role(request.user)
        return is_lab_manager(request.user)


class SubmitPermission(BasePermission):
    """Testers and lab managers submit work; object checks are the view's."""

    message = "You need the tester or lab manager role."

    def has_permission(self, request, view):
        return has_any_role(request.user)
