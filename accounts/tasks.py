from celery import shared_task


@shared_task(name="accounts.delete_expired_tokens", ignore_result=True)
def delete_expired_tokens() -> None:
    from accounts.authentication import expired_tokens_delete

    expired_tokens_delete()
