from django.http import Http404


def upload(request):
    raise Http404


template_download = upload_detail = upload_confirm = upload_status = upload
