FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 MISTUDIO_DATA_DIR=/data MISTUDIO_HOST=0.0.0.0
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
VOLUME /data
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py ensure_admin && python manage.py run_studio --host 0.0.0.0 --port 8000"]
